"""`torchrun --nproc_per_node=G -m cmc_ddp.train --spec spec.json --data_folder DIR [seed flags]`: CMC training
under DistributedDataParallel (run from torch_ddp/, or with it on PYTHONPATH). See ../README.md."""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.distributed as dist

from . import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
from .checkpoint import read_checkpoint, write_checkpoint
from .data import RankBatches, TrainTransform, open_data
from .dist import rank as get_rank, world as get_world
from .nce import MemoryBank
from .spec import CMC, UnsupportedSpec, load_spec
from .step import lr_at, train_step

# The flags of `cmc train` (train/trainer/config.ts TRAIN_DEFAULTS, upstream's train_CMC.py) that apply here.
DEFAULTS = dict(model_path='runs', batch_size=128, epochs=240, learning_rate=0.03, lr_decay_epochs='120,160,200',
                lr_decay_rate=0.1, momentum=0.9, weight_decay=1e-4, nce_k=16384, nce_t=0.07, nce_m=0.5,
                crop_low=0.2, view='Lab', seed=0, workers=2, print_freq=10, save_freq=10, dataset='auto', name='')


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--spec', required=True, help='network description JSON (`cmc spec --model NAME --out spec.json`)')
    ap.add_argument('--data_folder', required=True)
    ap.add_argument('--softmax', action='store_true', help='softmax CE instead of NCE')
    ap.add_argument('--resume', default='', help='a checkpoint of this trainer to continue from')
    ap.add_argument('--backend', default='auto', choices=['auto', 'gloo', 'nccl'])
    ap.add_argument('--nproc_per_node', type=int, default=1,
                    help='start this many local processes itself (without torchrun; e.g. where torchrun is broken)')
    for k, v in DEFAULTS.items():
        ap.add_argument(f'--{k}', type=type(v), default=v)
    a = ap.parse_args(argv)
    a.lr_decay_epochs = [int(x) for x in str(a.lr_decay_epochs).split(',') if x.strip()]
    return a


def run_name(a, spec):
    if a.name:
        return a.name
    return (f"memory_{'softmax' if a.softmax else 'nce'}_{a.nce_k}_{spec['arch']}_lr_{a.learning_rate}"
            f"_decay_{a.weight_decay}_bsz_{a.batch_size}_view_{a.view}")


def config_of(a, spec):
    """The run's config in train/trainer/config.ts TrainConfig's names, so the imported checkpoint describes it."""
    return {'data_folder': a.data_folder, 'model_path': a.model_path, 'model': spec['arch'], 'batch_size': a.batch_size,
            'epochs': a.epochs, 'learning_rate': a.learning_rate, 'lr_decay_epochs': a.lr_decay_epochs,
            'lr_decay_rate': a.lr_decay_rate, 'momentum': a.momentum, 'weight_decay': a.weight_decay,
            'nce_k': a.nce_k, 'nce_t': a.nce_t, 'nce_m': a.nce_m, 'feat_dim': spec['featDim'], 'softmax': a.softmax,
            'negatives': 'memory', 'crop_low': a.crop_low, 'view': a.view, 'views': [v['name'] for v in spec['views']],
            'objective': 'core', 'core_view': '', 'resume': a.resume, 'dataset': a.dataset,
            'image_size': spec['imageSize'], 'seed': a.seed, 'workers': a.workers, 'print_freq': a.print_freq,
            'save_freq': a.save_freq, 'name': a.name, 'trainer': 'torch_ddp'}


def check_spec(spec, view):
    names = [v['name'] for v in spec['views']]
    if len(names) != 2 or spec.get('input') not in (None, ['L', 'ab'] if view == 'Lab' else ['Y', 'CbCr']):
        raise UnsupportedSpec(f"the PyTorch trainer trains the two colour views (L, ab or Y, CbCr); this description "
                              f"has the views {', '.join(names)}{' and input ' + ','.join(spec['input']) if spec.get('input') else ''}")


def setup_dist(backend):
    if 'WORLD_SIZE' not in os.environ or int(os.environ['WORLD_SIZE']) == 1:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if backend == 'auto':
        backend = 'nccl' if torch.cuda.is_available() else 'gloo'
    dist.init_process_group(backend)
    if backend == 'nccl':
        local = int(os.environ.get('LOCAL_RANK', 0))
        torch.cuda.set_device(local)
        return torch.device('cuda', local)
    return torch.device('cpu')


def main(argv=None):
    a = parse_args(argv)
    try:
        spec = load_spec(a.spec)
        check_spec(spec, a.view)
        CMC(spec)  # refuses what the interpreter cannot build, naming the layer, before any process starts
    except UnsupportedSpec as e:
        print(f'cmc_ddp: {e}', file=sys.stderr)
        return 2
    if a.nproc_per_node > 1 and 'WORLD_SIZE' not in os.environ:
        return launch_local(a.nproc_per_node, sys.argv[1:] if argv is None else argv)
    device = setup_dist(a.backend)
    rank, world = get_rank(), get_world()
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if rank == 0 else (lambda m: None)
    if a.batch_size < world:
        raise SystemExit(f'--batch_size {a.batch_size} (the global batch) is smaller than the {world} processes')
    torch.manual_seed(a.seed)  # same init on every rank (DDP broadcasts rank 0's anyway)
    data = open_data(a.dataset, a.data_folder, TrainTransform(spec['imageSize'], a.crop_low, a.view))
    n = len(data)
    model = CMC(spec).to(device)
    bank = MemoryBank(spec['featDim'], n, a.nce_k, a.nce_t, a.nce_m, a.softmax, seed=a.seed + 1, device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=a.learning_rate, momentum=a.momentum, weight_decay=a.weight_decay)
    named = model.named_state()
    start, step, metrics = 1, 0, []
    if a.resume:
        tensors, meta = read_checkpoint(a.resume)
        if meta['spec'] != spec:
            raise SystemExit(f'{a.resume} was trained from another network description than {a.spec}')
        with torch.no_grad():
            for k, t in named.items():
                t.copy_(tensors[f'model/{k}'])
        for k, p in named.items():
            if f'sgd/{k}' in tensors:
                optimizer.state[p]['momentum_buffer'] = tensors[f'sgd/{k}'].clone().to(device)
        bank.memory_l.copy_(tensors['memory/0'])
        bank.memory_ab.copy_(tensors['memory/1'])
        bank.z_l, bank.z_ab = meta['z']
        bank.gen.set_state(torch.tensor(meta['bank_rng'], dtype=torch.uint8))
        start, step, metrics = meta['epoch'] + 1, meta['step'], meta['metrics']
        log(f'[cmc_ddp] resumed from {a.resume}: epoch {meta["epoch"]} done, step {step}')
    ddp = model
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == 'cuda' else None,
                                                        broadcast_buffers=False)  # BN statistics are already global
    sampler = RankBatches(n, a.batch_size, a.seed, rank, world)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler, num_workers=a.workers, pin_memory=device.type == 'cuda')
    run_dir = os.path.join(a.model_path, run_name(a, spec))
    log(f"[cmc_ddp] {spec['arch']} on {world} process(es) ({device.type}); {n} images, global batch {a.batch_size}, "
        f"K={a.nce_k}, {'softmax-CE' if a.softmax else 'NCE'} loss, run folder {run_dir}")
    model.train()
    for epoch in range(start, a.epochs + 1):
        lr = lr_at(a.learning_rate, epoch, a.lr_decay_epochs, a.lr_decay_rate)
        for g in optimizer.param_groups:
            g['lr'] = lr
        sampler.epoch = epoch
        batches = sampler.batches()
        sums = dict(loss=0.0, loss_l=0.0, loss_ab=0.0, prob_l=0.0, prob_ab=0.0)
        seen, t0 = 0, time.time()
        for i, (x, y) in enumerate(loader):
            y_global, counts = torch.from_numpy(batches[i][0]).long(), batches[i][1]
            r = train_step(ddp, bank, optimizer, x.to(device, non_blocking=True), y, y_global, counts, rank)
            step += 1
            b = sum(counts)
            if not math.isfinite(r['loss']):
                raise SystemExit(f"loss became {r['loss']} at epoch {epoch}, step {step}; try a lower --learning_rate")
            for k in sums:
                sums[k] += r[k] * b
            seen += b
            if (i + 1) % a.print_freq == 0:
                log(f"epoch {epoch} [{i + 1}/{len(batches)}] loss {r['loss']:.3f} (avg {sums['loss'] / seen:.3f}) "
                    f"p_l {r['prob_l']:.2e} p_ab {r['prob_ab']:.2e} lr {lr}")
        sec = time.time() - t0
        m = dict(epoch=epoch, step=step, lr=lr, **{k: v / max(seen, 1) for k, v in sums.items()}, epoch_sec=sec,
                 images_per_s=seen / sec if sec > 0 else 0.0)
        metrics.append(m)
        log(f"[cmc_ddp] epoch {epoch} done in {sec:.1f} s ({m['images_per_s']:.1f} img/s): loss {m['loss']:.4f}")
        if rank == 0:
            save(os.path.join(run_dir, 'current.safetensors'), model, optimizer, bank, spec, config_of(a, spec),
                 epoch, step, n, getattr(data, 'classes', []), metrics)
            with open(os.path.join(run_dir, 'metrics.jsonl'), 'a') as f:
                f.write(json.dumps(m) + '\n')
            if epoch % a.save_freq == 0 or epoch == a.epochs:
                save(os.path.join(run_dir, f'ckpt_epoch_{epoch}.safetensors'), model, optimizer, bank, spec,
                     config_of(a, spec), epoch, step, n, getattr(data, 'classes', []), metrics)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return 0


def launch_local(nproc, argv):
    """What `torchrun --standalone --nproc_per_node N` does for one node: N processes with the env:// variables."""
    import socket
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    mp.spawn(_local_worker, args=(nproc, port, argv), nprocs=nproc, join=True)
    return 0


def _local_worker(local_rank, nproc, port, argv):
    os.environ.update(RANK=str(local_rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(nproc), LOCAL_WORLD_SIZE=str(nproc),
                      MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    code = main(argv)
    if code:
        raise SystemExit(code)


def save(path, model, optimizer, bank, spec, config, epoch, step, n, classes, metrics):
    named = model.named_state()
    tensors = {f'model/{k}': t for k, t in named.items()}
    for k, p in named.items():
        buf = optimizer.state.get(p, {}).get('momentum_buffer') if isinstance(p, torch.nn.Parameter) else None
        if buf is not None:
            tensors[f'sgd/{k}'] = buf
    tensors.update(bank.state())
    meta = dict(format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION, spec=spec, config=config, epoch=epoch, step=step,
                z=[bank.z_l, bank.z_ab], n_data=n, class_names=list(classes), metrics=metrics,
                bank_rng=bank.gen.get_state().tolist(), softmax=bank.softmax)
    write_checkpoint(path, tensors, meta)


if __name__ == '__main__':
    sys.exit(main())
