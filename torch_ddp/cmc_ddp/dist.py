"""What keeps the ranks one model: batch statistics over the global batch, and row gathers for the memory bank.

torch.nn.SyncBatchNorm only runs on CUDA in the torch versions CI has (Debian's 1.13), and the equivalence test
runs on CPU with gloo, so BatchNorm here reduces its statistics itself, with the autograd-aware all_reduce of
torch.distributed.nn (its backward all-reduces the gradient, so each rank's backward sees every rank's loss).
With one process it is torch's batch_norm; with several, the same rule over the global batch: train mode
normalises with the biased batch variance and updates the running statistics with the unbiased one (PyTorch's
rule, as train/model/build_tfjs.ts).
"""
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F


def world():
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank():
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def comm_device():
    """Where collectives' tensors must live: the current GPU under NCCL, else the CPU (gloo)."""
    if world() > 1 and dist.get_backend() == 'nccl':
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def _all_reduce_autograd(t):
    if world() == 1:
        return t
    from torch.distributed.nn.functional import all_reduce
    return all_reduce(t)


class CrossRankBatchNorm(nn.Module):
    def __init__(self, c, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer('running_mean', torch.zeros(c))
        self.register_buffer('running_var', torch.ones(c))

    def forward(self, x):
        shape = [1, -1] + [1] * (x.dim() - 2)
        if not self.training or world() == 1:
            # one process: PyTorch's fused kernel, the same rule (the DDP check compares it with the path below)
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training,
                                self.momentum, self.eps)
        dims = [0] + list(range(2, x.dim()))
        local_n = x.numel() // x.shape[1]
        # Two passes (mean, then centred squares), each summed over ranks: no E[x^2] - E[x]^2 cancellation.
        n = int(_count(local_n, x.device))
        mean = _all_reduce_autograd(x.sum(dims)) / n
        xc = x - mean.view(shape)
        var = _all_reduce_autograd((xc * xc).sum(dims)) / n
        with torch.no_grad():
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            self.running_var.mul_(1 - m).add_(var.detach() * (n / max(n - 1, 1)), alpha=m)
        return xc * torch.rsqrt(var + self.eps).view(shape) * self.weight.view(shape) + self.bias.view(shape)


def _count(local_n, device):
    t = torch.tensor([float(local_n)], device=device)
    dist.all_reduce(t)
    return t.item()


def gather_rows(t, counts):
    """Every rank's rows of `t` in rank order (counts[r] rows on rank r; uneven counts are padded to send)."""
    if world() == 1:
        return t
    t = t.to(comm_device())
    top = max(counts)
    pad = t.new_zeros((top - t.shape[0],) + tuple(t.shape[1:]))
    parts = [t.new_empty((top,) + tuple(t.shape[1:])) for _ in counts]
    dist.all_gather(parts, torch.cat([t, pad]).contiguous())
    return torch.cat([p[:c] for p, c in zip(parts, counts)])


def all_mean(value):
    """Mean of a python float over ranks (float64)."""
    if world() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=comm_device())
    dist.all_reduce(t)
    return t.item() / world()
