#!/bin/sh
# A/B of the wasm training step, 1 vs 2 XNNPACK threads, next to PyTorch 1.13 (Debian) and 2.x (/tmp/torchvenv),
# all at 2 threads except the 1-thread wasm row. Usage: sh bench/ab_train_step.sh [rounds] > results.jsonl
R=${1:-1}
TORCH2=${TORCH2:-/tmp/torchvenv/bin/python}
for r in $(seq 1 "$R"); do
  for cfg in "alexnet_small 64 128" "alexnet 224 32"; do
    set -- $cfg
    A="bench train-step --model $1 --image_size $2 --batch_size $3 --backend wasm --warmup 2 --steps 3 --json"
    CMC_WASM_THREADS=1 node bin/cmc.js $A
    node bin/cmc.js $A --torch
    node bin/cmc.js $A --torch --python "$TORCH2"
  done
done
