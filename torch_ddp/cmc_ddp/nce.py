"""NCEAverage, NCECriterion and the softmax CE of upstream (HobbitLong/CMC NCE/NCEAverage.py, NCE/NCECriterion.py), as bench/torch_train_step.py
states them, made rank-aware: every rank holds the whole memory bank; the negatives of the global batch are
drawn from one generator seeded alike on every rank (each rank scores its own rows of the draw); Z is the mean
over the global batch; the loss is scaled so that DDP's gradient average equals the one-process gradient of
the global batch; and the bank update uses every rank's indices and embeddings (dist.gather_rows), so the
banks stay identical.
"""
import math
import sys

import torch
import torch.nn.functional as F

from .dist import all_mean, gather_rows, rank

EPS = 1e-7


class MemoryBank:
    def __init__(self, dim, n_data, k, t=0.07, momentum=0.5, softmax=False, seed=0, device='cpu'):
        # drawn on the CPU (one stream whatever the device), then kept where the embeddings are: the rows are
        # read and written every step
        self.gen = torch.Generator().manual_seed(seed)
        s = 1.0 / math.sqrt(dim / 3)
        # uniform(-s, s), not normalised (upstream's init)
        self.memory_l = torch.rand(n_data, dim, generator=self.gen).mul_(2 * s).add_(-s).to(device)
        self.memory_ab = torch.rand(n_data, dim, generator=self.gen).mul_(2 * s).add_(-s).to(device)
        self.n, self.k, self.t, self.m, self.softmax = n_data, k, t, momentum, softmax
        self.z_l = -1.0
        self.z_ab = -1.0

    def draw(self, y_global):
        """B x (K+1) uniform dataset indices, column 0 = y (the positives); same on every rank."""
        idx = torch.randint(0, self.n, (y_global.shape[0], self.k + 1), generator=self.gen)
        idx[:, 0] = y_global
        return idx

    def scores(self, l, ab, idx):
        b, d = l.shape
        flat = idx.reshape(-1).to(self.memory_l.device)
        w_ab = torch.index_select(self.memory_ab, 0, flat).view(b, self.k + 1, d).to(l.device)
        w_l = torch.index_select(self.memory_l, 0, flat).view(b, self.k + 1, d).to(l.device)
        out_l = torch.bmm(w_ab, l.view(b, d, 1)).squeeze(-1)  # L anchor vs ab memory
        out_ab = torch.bmm(w_l, ab.view(b, d, 1)).squeeze(-1)  # ab anchor vs L memory
        if self.softmax:
            return out_l / self.t, out_ab / self.t
        out_l = torch.exp(out_l / self.t)
        out_ab = torch.exp(out_ab / self.t)
        if self.z_l < 0:
            # estimated once, on the first global batch, then frozen (a constant: no gradient)
            self.z_l = all_mean(out_l.mean().item()) * self.n
            self.z_ab = all_mean(out_ab.mean().item()) * self.n
            if rank() == 0:
                print(f'normalization constant Z_l is set to {self.z_l:.1f}', file=sys.stderr)
                print(f'normalization constant Z_ab is set to {self.z_ab:.1f}', file=sys.stderr)
        return out_l / self.z_l, out_ab / self.z_ab

    def per_example_loss(self, out):
        """Loss of each row: NCECriterion's or softmax CE with target 0; upstream's loss is their mean."""
        if self.softmax:
            return F.cross_entropy(out, torch.zeros(out.shape[0], dtype=torch.long, device=out.device), reduction='none')
        c = (out.shape[1] - 1) / self.n
        lnp_d1 = torch.log(out[:, 0] / (out[:, 0] + c + EPS))
        lnp_d0 = torch.log(c / (out[:, 1:] + c + EPS)).sum(dim=1)
        return -(lnp_d1 + lnp_d0)

    @torch.no_grad()
    def update(self, l, ab, y):
        """Momentum update of the rows y with renormalisation; rows are read before any write of this batch."""
        y = y.to(self.memory_l.device)
        for mem, feat in ((self.memory_l, l), (self.memory_ab, ab)):
            row = torch.index_select(mem, 0, y).mul_(self.m).add_(feat.detach().to(mem.device), alpha=1 - self.m)
            row.div_(row.norm(dim=1, keepdim=True))
            mem.index_copy_(0, y, row)

    def state(self):
        return {'memory/0': self.memory_l, 'memory/1': self.memory_ab}


def contrast_step(bank, l, ab, y_global, counts, rank, idx_global=None):
    """One rank's part of the loss on the global batch y_global (rank r holds rows offset_r..offset_r+counts[r]).

    Returns (local loss to backward, (loss_l, loss_ab, prob_l, prob_ab) of the global batch, out_l, out_ab).
    The local loss is sum over this rank's rows / B_global * world: DDP averages gradients over ranks, which
    makes the result the one-process gradient of mean-over-B loss, even for an uneven last batch.
    """
    world = len(counts)
    b_global = int(sum(counts))
    lo = int(sum(counts[:rank]))
    idx = idx_global if idx_global is not None else bank.draw(y_global)
    idx = idx[lo:lo + counts[rank]]
    out_l, out_ab = bank.scores(l, ab, idx)
    el_l = bank.per_example_loss(out_l)
    el_ab = bank.per_example_loss(out_ab)
    scale = world / b_global
    loss = (el_l.sum() + el_ab.sum()) * scale
    p_l = (out_l if not bank.softmax else F.softmax(out_l, dim=1))[:, 0]
    p_ab = (out_ab if not bank.softmax else F.softmax(out_ab, dim=1))[:, 0]
    stats = [all_mean(v.sum().item() * scale) for v in (el_l, el_ab, p_l.detach(), p_ab.detach())]
    return loss, stats, out_l, out_ab


@torch.no_grad()
def update_bank(bank, l, ab, y_local, counts):
    """Gather every rank's (indices, embeddings) in rank order, then the same update on every rank."""
    y = gather_rows(y_local, counts)
    bank.update(gather_rows(l.detach(), counts), gather_rows(ab.detach(), counts), y)
    return y
