"""Checkpoints in the safetensors layout (https://github.com/huggingface/safetensors, the format's README):
u64 little-endian header length | JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}
| raw little-endian tensor bytes. Written with plain Python so that Debian's torch needs nothing else;
`safetensors.torch.load_file` reads these files too. `cmc import-torch` (train/interop/torch_checkpoint.ts)
reads them into the project's format.

Tensors (PyTorch layout, float32): model/<view>.<state_dict name> (conv [out, in, kh, kw], linear [out, in]),
sgd/<same name> (momentum buffers), memory/<v> (the memory bank, one per view).
Metadata (JSON strings): format, version, spec, config, epoch, step, z, n_data, class_names, metrics.
"""
import json
import os
import struct

import torch

from . import CHECKPOINT_FORMAT, CHECKPOINT_VERSION


def write_checkpoint(path, tensors, meta):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        a = t.detach().to('cpu', torch.float32).contiguous().numpy()
        data = a.astype('<f4', copy=False).tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(a.shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header['__metadata__'] = {k: json.dumps(v) for k, v in meta.items()}
    h = json.dumps(header, separators=(',', ':')).encode('utf8')
    h += b' ' * ((8 - len(h) % 8) % 8)  # the format pads the header with spaces to 8 bytes
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp-{os.getpid()}'
    with open(tmp, 'wb') as f:  # atomic, as core/formats/checkpoint.ts: a crash keeps the previous file
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_checkpoint(path):
    with open(path, 'rb') as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError(f'{path}: not a checkpoint (too short)')
    (n,) = struct.unpack('<Q', buf[:8])
    try:
        header = json.loads(buf[8:8 + n])
    except ValueError as e:
        raise ValueError(f'{path}: not a safetensors checkpoint ({e})') from e
    meta = {k: json.loads(v) for k, v in header.pop('__metadata__', {}).items()}
    if meta.get('format') != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a {CHECKPOINT_FORMAT} (format {meta.get('format')!r})")
    if meta.get('version') != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: checkpoint version {meta.get('version')!r}, this code reads {CHECKPOINT_VERSION}")
    tensors = {}
    for name, e in header.items():
        lo, hi = e['data_offsets']
        tensors[name] = torch.frombuffer(bytearray(buf[8 + n + lo:8 + n + hi]), dtype=torch.float32).reshape(e['shape'])
    return tensors, meta
