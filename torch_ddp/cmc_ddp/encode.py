"""Embeddings of a trained checkpoint in eval mode, from uint8 RGB images (the input `cmc export`'s ONNX takes):
`python3 -m cmc_ddp.encode --checkpoint current.safetensors --images x.u8 --count N` where x.u8 holds N
images of the description's size, NHWC, row-major. Prints {"embedding": [[...], ...]}: each view's L2-normalised
embedding, views in order, concatenated (the ONNX `embedding` output)."""
import argparse
import json
import sys

import numpy as np
import torch

from .checkpoint import read_checkpoint
from .color import to_view_input
from .spec import CMC


def load_model(path):
    tensors, meta = read_checkpoint(path)
    model = CMC(meta['spec'])
    with torch.no_grad():
        for k, t in model.named_state().items():
            t.copy_(tensors[f'model/{k}'])
    model.eval()
    return model, meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--checkpoint', required=True)
    ap.add_argument('--images', required=True)
    ap.add_argument('--count', type=int, required=True)
    a = ap.parse_args(argv)
    model, meta = load_model(a.checkpoint)
    s = meta['spec']['imageSize']
    rgb = np.fromfile(a.images, dtype=np.uint8).reshape(a.count, s, s, 3)
    x = torch.from_numpy(np.ascontiguousarray(to_view_input(rgb, meta['config'].get('view', 'Lab')).transpose(0, 3, 1, 2)))
    with torch.no_grad():
        emb = torch.cat(model(x), dim=1)
    print(json.dumps({'embedding': emb.tolist()}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
