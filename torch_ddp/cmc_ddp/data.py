"""Training data as `cmc train` reads it: an image folder (class sub-folders; `<data_folder>/train` when it
exists) or CIFAR-10's binary batches, each sample returned with its dataset index (the memory-bank row), and
upstream's augmentation (train/data/augment.ts): RandomResizedCrop(size, scale=(crop_low, 1), ratio=(3/4, 4/3))
with bilinear resampling, RandomHorizontalFlip(0.5), then RGB -> normalised Lab (color.py).

The global batch: one permutation per epoch (seeded with seed + epoch, the same on every rank), cut into
batches of the global batch size; each batch is split over the ranks in rank order (numpy.array_split), so
rank r feeds its slice and the ranks together train exactly the one-process batch.
"""
import os

import numpy as np
import torch

from .color import to_view_input

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.webp')


def _images_root(folder):
    train = os.path.join(folder, 'train')
    return train if os.path.isdir(train) else folder


class ImageFolderData(torch.utils.data.Dataset):
    def __init__(self, folder, transform):
        from PIL import Image  # noqa: F401  (fail early when Pillow is missing)
        root = _images_root(folder)
        self.classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        self.files = []
        for c in self.classes:
            for dirpath, _, names in sorted(os.walk(os.path.join(root, c), followlinks=True)):
                self.files += [os.path.join(dirpath, n) for n in sorted(names) if n.lower().endswith(IMAGE_EXTENSIONS)]
        if not self.files:
            raise ValueError(f'no images found under {root}; expected class sub-folders of .jpg/.png/.webp')
        self.transform = transform

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image
        with Image.open(self.files[i]) as im:
            return self.transform(im.convert('RGB')), i


class Cifar10Data(torch.utils.data.Dataset):
    """data_batch_{1..5}.bin (in the folder or its cifar-10-batches-bin/): 1 label byte + 3072 CHW bytes."""

    def __init__(self, folder, transform):
        d = next((p for p in (folder, os.path.join(folder, 'cifar-10-batches-bin'))
                  if os.path.isfile(os.path.join(p, 'data_batch_1.bin'))), None)
        if d is None:
            raise ValueError(f'{folder}: no CIFAR-10 data_batch_*.bin')
        rec = np.concatenate([np.fromfile(os.path.join(d, f'data_batch_{k}.bin'), dtype=np.uint8).reshape(-1, 3073)
                              for k in range(1, 6) if os.path.isfile(os.path.join(d, f'data_batch_{k}.bin'))])
        self.images = rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        self.classes = [str(c) for c in range(10)]
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.images[i])), i


class TrainTransform:
    def __init__(self, size, crop_low=0.2, view='Lab'):
        from torchvision import transforms
        self.aug = transforms.Compose([
            transforms.RandomResizedCrop(size, scale=(crop_low, 1.0), ratio=(3 / 4, 4 / 3),
                                         interpolation=transforms.InterpolationMode.BILINEAR),
            transforms.RandomHorizontalFlip(),
        ])
        self.view = view

    def __call__(self, im):
        x = to_view_input(np.asarray(self.aug(im), dtype=np.uint8), self.view)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def open_data(kind, folder, transform):
    if kind == 'auto':
        kind = 'cifar10' if any(os.path.isfile(os.path.join(p, 'data_batch_1.bin'))
                                for p in (folder, os.path.join(folder, 'cifar-10-batches-bin'))) else 'imagefolder'
    if kind == 'cifar10':
        return Cifar10Data(folder, transform)
    if kind == 'imagefolder':
        return ImageFolderData(folder, transform)
    raise ValueError(f'--dataset must be auto, imagefolder or cifar10, got {kind}')


def global_batches(n, batch_size, seed, epoch, world):
    """The epoch's global batches (index arrays) and each one's split over ranks; a last batch smaller than
    the number of ranks is dropped (a rank cannot step on zero images)."""
    perm = np.random.default_rng(seed + epoch).permutation(n)
    out = []
    for lo in range(0, n, batch_size):
        b = perm[lo:lo + batch_size]
        if len(b) < world:
            break
        out.append((b, [len(p) for p in np.array_split(b, world)]))
    return out


class RankBatches(torch.utils.data.Sampler):
    """This rank's slice of each global batch, for DataLoader(batch_sampler=...)."""

    def __init__(self, n, batch_size, seed, rank, world):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.epoch = 1

    def batches(self):
        return global_batches(self.n, self.batch_size, self.seed, self.epoch, self.world)

    def __iter__(self):
        for b, counts in self.batches():
            lo = sum(counts[:self.rank])
            yield b[lo:lo + counts[self.rank]].tolist()

    def __len__(self):
        return len(self.batches())
