"""The memory-bank part of the PyTorch step on the golden inputs (test/fixtures/golden.json): both steps of
both modes, float32, with the fixture's memories and negatives; and the trainer's RGB -> Lab and learning-rate
schedule on the fixture's pixels and epochs. Prints one JSON object with what the TypeScript tests check (Z,
outputs, losses, gradients w.r.t. l and ab, memories after each step, Lab, lr); test/torch_ddp/golden.test.ts
compares it with the fixture. Usage: python3 checks/golden_step.py golden.json
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from cmc_ddp.color import rgb_to_lab, to_view_input  # noqa: E402
from cmc_ddp.nce import MemoryBank, contrast_step, update_bank  # noqa: E402
from cmc_ddp.step import lr_at  # noqa: E402


def run(g, softmax):
    c = g['config']
    bank = MemoryBank(c['feat_dim'], c['n_data'], c['K'], c['T'], c['momentum'], softmax)
    bank.memory_l = torch.tensor(g['inputs']['memory_l'], dtype=torch.float32)
    bank.memory_ab = torch.tensor(g['inputs']['memory_ab'], dtype=torch.float32)
    out = {}
    for s in ('step1', 'step2'):
        inp = g['inputs'][s]
        y = torch.tensor(inp['y'])
        idx = torch.tensor(inp['idx'])
        l = torch.tensor(inp['l'], dtype=torch.float32, requires_grad=True)
        ab = torch.tensor(inp['ab'], dtype=torch.float32, requires_grad=True)
        loss, stats, out_l, out_ab = contrast_step(bank, l, ab, y, [len(inp['y'])], 0, idx_global=idx)
        loss.backward()  # loss_l depends on l only and loss_ab on ab only: the grads are d(loss_l)/dl, d(loss_ab)/dab
        update_bank(bank, l, ab, y, [len(inp['y'])])
        out[s] = {'out_l': out_l.tolist(), 'out_ab': out_ab.tolist(), 'loss_l': stats[0], 'loss_ab': stats[1],
                  'grad_l': l.grad.tolist(), 'grad_ab': ab.grad.tolist(),
                  'memory_l_after': bank.memory_l.tolist(), 'memory_ab_after': bank.memory_ab.tolist()}
        if not softmax:
            out[s]['Z_l'], out[s]['Z_ab'] = bank.z_l, bank.z_ab
    return out


if __name__ == '__main__':
    with open(sys.argv[1]) as f:
        g = json.load(f)
    torch.set_num_threads(1)
    px = np.array(g['rgb2lab']['pixels_uint8_rgb'], dtype=np.uint8)
    p = g['lr_schedule']['pretrain']
    print(json.dumps({'nce': run(g, False), 'softmax': run(g, True), 'torch': torch.__version__,
                      'lab': rgb_to_lab(px).tolist(), 'lab_normalized': to_view_input(px, 'Lab').tolist(),
                      'lr': [lr_at(p['base'], e, p['decay_epochs'], p['rate']) for e in p['epochs']]}))
