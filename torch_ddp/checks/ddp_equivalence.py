"""A P-process DDP run (gloo, CPU) against a one-process run of the same global batches: 3 training steps
(full model, SGD, memory bank) from the same initial weights. Prints one JSON object: each run's losses, the
largest differences of the banks and weights after the last step, and how far the ranks' banks differ from
each other (test/torch_ddp/ddp.test.ts checks it).

  python3 checks/ddp_equivalence.py --spec tiny.json [--world 2 --batches 8,8,7 --softmax]
"""
import argparse
import json
import os
import socket
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from cmc_ddp.nce import MemoryBank  # noqa: E402
from cmc_ddp.spec import CMC, load_spec  # noqa: E402
from cmc_ddp.step import train_step  # noqa: E402

N_DATA, K = 40, 6


def batches(spec, sizes):
    g = torch.Generator().manual_seed(1)
    hw = spec['imageSize']
    out = []
    for b in sizes:
        x = torch.rand(b, 3, hw, hw, generator=g).mul_(2).sub_(1)
        y = torch.randperm(N_DATA, generator=g)[:b]
        out.append((x, y))
    return out


def split(b, world):
    return [b // world + (1 if r < b % world else 0) for r in range(world)]  # numpy.array_split's sizes


def run(rank, world, args, out_dir):
    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{args.port}', rank=rank, world_size=world)
    spec = load_spec(args.spec)
    torch.manual_seed(0)
    model = CMC(spec)
    model.train()
    ddp = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False) if world > 1 else model
    bank = MemoryBank(spec['featDim'], N_DATA, K, softmax=args.softmax, seed=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    losses = []
    for x, y in batches(spec, args.sizes):
        counts = split(x.shape[0], world)
        lo = sum(counts[:rank])
        sl = slice(lo, lo + counts[rank])
        r = train_step(ddp, bank, opt, x[sl], y[sl], y, counts, rank)
        losses.append(r['loss'])
    torch.save({'losses': losses, 'memory_l': bank.memory_l, 'memory_ab': bank.memory_ab,
                'params': {k: t.detach().clone() for k, t in model.named_state().items()}},
               os.path.join(out_dir, f'w{world}_r{rank}.pt'))
    if world > 1:
        dist.destroy_process_group()


def max_diff(a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in a) if isinstance(a, dict) else float((a - b).abs().max())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--spec', required=True)
    ap.add_argument('--world', type=int, default=2)
    ap.add_argument('--batches', default='8,8,8')
    ap.add_argument('--softmax', action='store_true')
    args = ap.parse_args()
    args.sizes = [int(s) for s in args.batches.split(',')]
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        args.port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as d:
        run(0, 1, args, d)
        mp.spawn(run, args=(args.world, args, d), nprocs=args.world, join=True)
        one = torch.load(os.path.join(d, 'w1_r0.pt'))
        ranks = [torch.load(os.path.join(d, f'w{args.world}_r{r}.pt')) for r in range(args.world)]
    ddp = ranks[0]
    print(json.dumps({
        'torch': torch.__version__, 'world': args.world, 'batches': args.sizes,
        'loss': 'softmax' if args.softmax else 'nce',
        'losses_one_process': one['losses'], 'losses_ddp': ddp['losses'],
        'bank_max_diff': max(max_diff(one['memory_l'], ddp['memory_l']), max_diff(one['memory_ab'], ddp['memory_ab'])),
        'weights_max_diff': max_diff(one['params'], ddp['params']),
        'bank_max_diff_between_ranks': max(max(max_diff(ddp['memory_l'], r['memory_l']), max_diff(ddp['memory_ab'], r['memory_ab']))
                                           for r in ranks[1:]),
        'weights_max_diff_between_ranks': max(max_diff(ddp['params'], r['params']) for r in ranks[1:]),
    }))


if __name__ == '__main__':
    main()
