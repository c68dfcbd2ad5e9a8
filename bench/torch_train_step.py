#!/usr/bin/env python3
"""PyTorch reference for `cmc bench train-step`: one full CMC training step, built from the same CmcSpec JSON
as the tfjs model (core/network/layers.ts), so the architecture has one source of truth.

Usage (Debian's python, which has torch; see bench/README.md):

  /usr/bin/python3 bench/torch_train_step.py --spec spec.json --batch_size 128 --nce_k 4096 --n_data 5000 \
      --threads 2 --warmup 2 --steps 5 [--softmax]
  /usr/bin/python3 bench/torch_train_step.py --memory_bank_only --n_data 50000 --threads 2 \
      [--batch_size 128 --nce_k 16384 --feat_dim 128]

Prints ONE JSON line on stdout (diagnostics go to stderr).

The step follows upstream's HobbitLong/CMC train_CMC.py with NCE/NCEAverage.py and NCE/NCECriterion.py: both encoders forward in train mode, NCEAverage (N x D memories,
uniform init on [-s, s] with s = 1/sqrt(D/3), B x (K+1) uniform indices with column 0 = y, cross-view scores
out_l = <memory_ab[idx], l>, out_ab = <memory_l[idx], ab> via bmm, NCE: exp(s/T)/Z with Z estimated once on the
first batch then frozen; softmax: s/T), NCECriterion (or softmax CE with target 0) on both views, backward,
SGD(lr 0.03, momentum 0.9, weight decay 1e-4), then the memory momentum update with renormalisation (no grad).
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

NCE_T = 0.07
NCE_M = 0.5
LR = 0.03
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
EPS = 1e-7


# ---------------------------------------------------------------------------------------------------------
# The network: the one PyTorch interpreter of the description language (torch_ddp/cmc_ddp/spec.py, which the
# DDP trainer uses too). With one process its batch norm is torch's own batch_norm.

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'torch_ddp'))
from cmc_ddp.spec import CMC  # noqa: E402


# ---------------------------------------------------------------------------------------------------------
# NCEAverage + criteria (HobbitLong/CMC NCE/NCEAverage.py, NCE/NCECriterion.py)

def scoring_path(scoring, n, b, k):
    """Which scoring path a batch of b takes: the rule of MemoryBank.scoringPath (train/loss/memory_bank.ts)."""
    if scoring != 'auto':
        return scoring
    return 'bank' if n <= b * (k + 1) and b * n < 2 ** 31 else 'gather'


class NCEAverage:
    def __init__(self, dim, n_data, k, t=NCE_T, momentum=NCE_M, softmax=False, gen=None, scoring='auto'):
        s = 1.0 / math.sqrt(dim / 3)
        self.memory_l = torch.rand(n_data, dim, generator=gen).mul_(2 * s).add_(-s)
        self.memory_ab = torch.rand(n_data, dim, generator=gen).mul_(2 * s).add_(-s)
        self.n, self.k, self.t, self.m = n_data, k, t, momentum
        self.softmax = softmax
        self.scoring = scoring
        self.z_l = -1.0
        self.z_ab = -1.0
        self.gen = gen

    def forward(self, l, ab, y, idx=None):
        b, d = l.shape
        kp1 = self.k + 1
        if idx is None:
            idx = torch.randint(0, self.n, (b, kp1), generator=self.gen)
            idx[:, 0] = y
        # memory rows are constants (plain tensors, no grad)
        if self.path(b) == 'bank':
            # one B x N product against the whole memory, then pick the sampled columns (autograd's backward
            # scatters into B x N and multiplies by the memory), as train/loss/memory_bank.ts scoreOp does
            out_l = torch.gather(l @ self.memory_ab.t(), 1, idx).unsqueeze(-1)  # L anchor vs ab memory
            out_ab = torch.gather(ab @ self.memory_l.t(), 1, idx).unsqueeze(-1)  # ab anchor vs L memory
        else:
            # the original code: gather the B(K+1) sampled rows, one batched dot per anchor
            flat = idx.view(-1)
            w_ab = torch.index_select(self.memory_ab, 0, flat).view(b, kp1, d)
            out_l = torch.bmm(w_ab, l.view(b, d, 1))  # L anchor vs ab memory
            w_l = torch.index_select(self.memory_l, 0, flat).view(b, kp1, d)
            out_ab = torch.bmm(w_l, ab.view(b, d, 1))  # ab anchor vs L memory
        if self.softmax:
            out_l = out_l / self.t
            out_ab = out_ab / self.t
        else:
            out_l = torch.exp(out_l / self.t)
            out_ab = torch.exp(out_ab / self.t)
            if self.z_l < 0:
                self.z_l = out_l.mean().item() * self.n
                print(f'normalization constant Z_l is set to {self.z_l:.1f}', file=sys.stderr)
            if self.z_ab < 0:
                self.z_ab = out_ab.mean().item() * self.n
                print(f'normalization constant Z_ab is set to {self.z_ab:.1f}', file=sys.stderr)
            out_l = out_l / self.z_l
            out_ab = out_ab / self.z_ab
        return out_l, out_ab

    def path(self, b):
        return scoring_path(self.scoring, self.n, b, self.k)

    @torch.no_grad()
    def update(self, l, ab, y):
        # rows are read before any write of this batch (index_select copies)
        for mem, feat in ((self.memory_l, l), (self.memory_ab, ab)):
            row = torch.index_select(mem, 0, y).mul_(self.m).add_(feat.detach(), alpha=1 - self.m)
            row.div_(row.norm(dim=1, keepdim=True))
            mem.index_copy_(0, y, row)


def nce_criterion(x, n_data):
    b = x.shape[0]
    m = x.shape[1] - 1
    c = m * (1.0 / n_data)
    p_pos = x[:, 0]
    lnp_d1 = torch.log(p_pos / (p_pos + c + EPS))
    p_neg = x[:, 1:]
    lnp_d0 = torch.log(c / (p_neg + c + EPS))
    return -(lnp_d1.sum() + lnp_d0.sum()) / b


def softmax_criterion(x):
    x = x.squeeze(-1)
    target = torch.zeros(x.shape[0], dtype=torch.long)
    return F.cross_entropy(x, target)


def contrast_loss(contrast, l, ab, y, idx=None):
    out_l, out_ab = contrast.forward(l, ab, y, idx)
    if contrast.softmax:
        loss = softmax_criterion(out_l) + softmax_criterion(out_ab)
    else:
        loss = nce_criterion(out_l, contrast.n) + nce_criterion(out_ab, contrast.n)
    return loss, out_l, out_ab


# ---------------------------------------------------------------------------------------------------------

def median_ms(ts):
    return statistics.median(ts) * 1000.0


def time_memory_bank(b, k, d, n, softmax, warmup, steps, gen, scoring):
    """Median seconds of the memory-bank part alone: scores + loss for both views, backward w.r.t. the
    (fixed, grad-requiring) embeddings, then the memory update."""
    contrast = NCEAverage(d, n, k, softmax=softmax, gen=gen, scoring=scoring)
    l = F.normalize(torch.randn(b, d, generator=gen), dim=1).requires_grad_(True)
    ab = F.normalize(torch.randn(b, d, generator=gen), dim=1).requires_grad_(True)
    times = []
    for i in range(warmup + steps):
        y = torch.randperm(n, generator=gen)[:b]
        l.grad = None
        ab.grad = None
        t0 = time.perf_counter()
        loss, _, _ = contrast_loss(contrast, l, ab, y)
        loss.backward()
        contrast.update(l, ab, y)
        t1 = time.perf_counter()
        if i >= warmup:
            times.append(t1 - t0)
    if not math.isfinite(loss.item()) or l.grad is None:
        raise RuntimeError('memory-bank check failed (non-finite loss or no gradient)')
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--spec', help='CmcSpec JSON file (core/network/layers.ts); required unless --memory_bank_only')
    ap.add_argument('--batch_size', type=int, default=128)
    ap.add_argument('--nce_k', type=int, default=None, help='negatives (default 4096; 16384 with --memory_bank_only)')
    ap.add_argument('--n_data', type=int, default=50000)
    ap.add_argument('--feat_dim', type=int, default=128, help='memory-bank dim for --memory_bank_only')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--steps', type=int, default=5)
    ap.add_argument('--softmax', action='store_true', help='softmax CE (InfoNCE) instead of NCECriterion')
    ap.add_argument('--scoring', choices=['auto', 'bank', 'gather'], default='auto',
                    help="memory-bank scoring: 'bank' = one B x N product then pick the sampled columns, 'gather' = "
                         "gather B(K+1) rows then bmm (the original code); 'auto' (default, as ours) = bank when "
                         "N <= B(K+1), else gather")
    ap.add_argument('--memory_bank_only', action='store_true', help='time only the memory-bank part')
    ap.add_argument('--expect_params', type=int, default=None,
                    help='fail unless the model has exactly this many trainable params (TS countParams sum)')
    ap.add_argument('--seed', type=int, default=0)
    args = ap.parse_args()

    # interop first: it can only be set before any inter-op parallel work starts
    torch.set_num_interop_threads(1)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    if args.steps < 1:
        ap.error('--steps must be >= 1')

    if args.memory_bank_only:
        k = args.nce_k if args.nce_k is not None else 16384
        if args.n_data < args.batch_size:
            ap.error('--n_data must be >= --batch_size')
        t = time_memory_bank(args.batch_size, k, args.feat_dim, args.n_data, args.softmax,
                             args.warmup, args.steps, gen, args.scoring)
        print(json.dumps({
            'framework': 'pytorch', 'version': torch.__version__, 'threads': torch.get_num_threads(),
            'batch_size': args.batch_size, 'nce_k': k, 'feat_dim': args.feat_dim, 'n_data': args.n_data,
            'loss': 'softmax' if args.softmax else 'nce', 'memory_bank_ms': round(t * 1000.0, 3),
            'scoring': scoring_path(args.scoring, args.n_data, args.batch_size, k),
            'steps': args.steps,
        }))
        return

    if not args.spec:
        ap.error('--spec is required (unless --memory_bank_only)')
    with open(args.spec) as f:
        spec = json.load(f)
    k = args.nce_k if args.nce_k is not None else 4096
    b, n, hw = args.batch_size, args.n_data, spec['imageSize']
    if n < b:
        ap.error('--n_data must be >= --batch_size')

    model = CMC(spec)
    model.train()
    param_count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    named = sum(t.numel() for t in model.named_state().values() if isinstance(t, nn.Parameter))
    if named != param_count:
        raise RuntimeError(f'internal: spec-named params {named} != module params {param_count}')
    if args.expect_params is not None and args.expect_params != param_count:
        print(f'param count mismatch: torch {param_count}, expected {args.expect_params}', file=sys.stderr)
        sys.exit(2)
    feat_dims = [enc.out_shape for enc in model.encoders]
    if any(fd != [spec['featDim']] for fd in feat_dims):
        raise RuntimeError(f"encoder outputs {feat_dims} do not match featDim {spec['featDim']}")
    d = spec['featDim']

    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    contrast = NCEAverage(d, n, k, softmax=args.softmax, gen=gen, scoring=args.scoring)

    # one fixed batch: normalised Lab lies roughly in [-1, 1] per channel
    x = torch.rand(b, 3, hw, hw, generator=gen).mul_(2).sub_(1)

    times = []
    loss_v = float('nan')
    for i in range(args.warmup + args.steps):
        y = torch.randperm(n, generator=gen)[:b]
        t0 = time.perf_counter()
        feat_l, feat_ab = model(x)
        loss, out_l, out_ab = contrast_loss(contrast, feat_l, feat_ab, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        contrast.update(feat_l, feat_ab, y)
        loss_v = loss.item()  # synchronises (no-op on CPU) and is part of upstream's logging
        t1 = time.perf_counter()
        if i >= args.warmup:
            times.append(t1 - t0)
        print(f'step {i}{" (warmup)" if i < args.warmup else ""}: {1000 * (t1 - t0):.1f} ms, loss {loss_v:.4f}',
              file=sys.stderr)
    if not math.isfinite(loss_v):
        raise RuntimeError(f'non-finite loss {loss_v}')

    mb = time_memory_bank(b, k, d, n, args.softmax, args.warmup, args.steps, gen, args.scoring)
    ms = median_ms(times)
    print(json.dumps({
        'framework': 'pytorch', 'version': torch.__version__, 'threads': torch.get_num_threads(),
        'batch_size': b, 'image_size': hw, 'arch': spec['arch'], 'nce_k': k, 'n_data': n,
        'loss': 'softmax' if args.softmax else 'nce', 'scoring': contrast.path(b),
        'ms_per_step': round(ms, 3), 'images_per_s': round(b / (ms / 1000.0), 2),
        'memory_bank_ms': round(mb * 1000.0, 3), 'param_count': param_count, 'steps': args.steps,
        'last_loss': round(loss_v, 6),
    }))


if __name__ == '__main__':
    main()
