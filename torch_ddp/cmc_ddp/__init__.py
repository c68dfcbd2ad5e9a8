"""CMC on PyTorch DDP from the project's network description (core/network/layers.ts). See ../README.md."""

CHECKPOINT_FORMAT = 'cmc-torch-checkpoint'
CHECKPOINT_VERSION = 1
