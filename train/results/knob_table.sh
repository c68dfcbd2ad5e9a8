#!/usr/bin/env bash
# Which knobs matter, at a fixed budget: the base CMC recipe, then one run per knob with exactly one setting
# changed, each trained for the same epochs on the same images and evaluated by eval_protocol.sh (probe layers 5
# and 6, or 4 and 6 for ResNet; weight decay and layer chosen on 10% of train held out; kNN). Then `cmc report <out>` is the table.
#
# Usage:
#   train/results/knob_table.sh --data ../shared/data/imagenette64-sub --runs runs --out results_knobs
#   ... [--lanes 2] [--epochs 20] [--decay 14,18] [--only base,ycbcr] [--dry_run]
#
# Knobs (names are the method names in the report):
#   base        alexnet_mini 64 px, batch 32, lr 0.03, wd 5e-4, softmax-CE, T 0.1, K 4096, Lab views,
#               step schedule (x0.1 at --decay), crop_low 0.2, seed 0
#   base_seed1  the same with --seed 1 (how far two seeds of one recipe differ at this budget)
#   ycbcr       --view YCbCr                 nce      NCE loss (no --softmax) at upstream's T 0.07
#   t007, t02   --nce_t 0.07 / 0.2           cosine   --cosine
#   crop008     --crop_low 0.08              small    --model alexnet_small
#   mini_5ep    base for 5 epochs (x0.1 at 4), the budget r18_5ep is compared at
#   r18_5ep     --model resnet18v1_small for 5 epochs (20 would take ~3 h on one thread here)
# Each run uses one thread (OMP_NUM_THREADS=1, CMC_WASM_THREADS=1, --workers 1); --lanes runs go side by side.
# Finished runs and evaluations are skipped, an interrupted run resumes from its checkpoint: rerun to continue.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DATA='' RUNS=runs OUT='' LANES=2 EPOCHS=20 DECAY=14,18 ONLY='' DRY=0
die() { echo "knob_table: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --data) DATA=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --lanes) LANES=$2; shift 2 ;;
    --epochs) EPOCHS=$2; shift 2 ;;
    --decay) DECAY=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --dry_run) DRY=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1'" ;;
  esac
done
[ -n "$DATA" ] || die '--data <folder> is required'
[ -n "$OUT" ] || die '--out <dir> is required'

# name|flags that differ from base (a later flag overrides the base's).
KNOBS=(
  'base|'
  'base_seed1|--seed 1'
  'ycbcr|--view YCbCr'
  'nce|--nce_t 0.07'
  't007|--nce_t 0.07'
  't02|--nce_t 0.2'
  'cosine|--cosine'
  'crop008|--crop_low 0.08'
  'small|--model alexnet_small'
  'mini_5ep|--epochs 5 --lr_decay_epochs 4'
  'r18_5ep|--model resnet18v1_small --epochs 5 --lr_decay_epochs 4'
)

# The command lines of one knob: training, then its evaluation.
commands() {
  local name=${1%%|*} extra=${1#*|} loss=--softmax layers=5,6
  [ "$name" = nce ] && loss=''
  local evalx=(--workers 1)
  # ResNet: its layer 5 is layer4 unpooled (8x8x512 per view at 64 px, 32,768 features), so layer 4 (layer3
  # pooled to 3x3) and 6 (the pooled vector) are probed; and its forward at the default 256 images aborts out
  # of wasm memory, so features are extracted 32 at a time.
  case $extra in *resnet*) layers=4,6 evalx+=(--feature_batch 32) ;; esac
  # shellcheck disable=SC2086
  printf '%q ' npx --prefix "$ROOT" cmc train --data_folder "$DATA" --model alexnet_mini --image_size 64 \
    --batch_size 32 --learning_rate 0.03 --epochs "$EPOCHS" --lr_decay_epochs "$DECAY" --weight_decay 5e-4 \
    $loss --nce_t 0.1 --nce_k 4096 --knn_freq 0 --save_freq 10 --seed 0 --workers 1 --backend native \
    --model_path "$RUNS" --name "knob_$name" $extra
  printf '\n'
  printf '%q ' "$ROOT/train/results/eval_protocol.sh" --checkpoint "$RUNS/knob_$name/current.ckpt" --name "$name" \
    --layers "$layers" --data "$DATA" --out "$OUT" -- "${evalx[@]}"
  printf '\n'
}

run_knob() {
  local spec=$1 name=${1%%|*}
  mapfile -t cmd < <(commands "$spec")
  mkdir -p "$OUT/logs"
  if [ -s "$OUT/knn_$name.json" ]; then echo "[knob_table] $name: done, skipped" >&2; return 0; fi
  local resume=''
  # A run whose last epoch is written is complete; a partial one resumes.
  if [ -s "$RUNS/knob_$name/current.ckpt" ]; then resume="--resume $(printf %q "$RUNS/knob_$name/current.ckpt")"; fi
  echo "[knob_table] $(date +%T) $name: ${cmd[0]} $resume" >&2
  (export OMP_NUM_THREADS=1 CMC_WASM_THREADS=1; eval "${cmd[0]} $resume") > "$OUT/logs/train_$name.log" 2>&1 ||
    { echo "[knob_table] $name: training failed (see $OUT/logs/train_$name.log)" >&2; return 1; }
  echo "[knob_table] $(date +%T) $name: evaluating" >&2
  (export OMP_NUM_THREADS=1 CMC_WASM_THREADS=1; eval "${cmd[1]}") > "$OUT/logs/eval_$name.log" 2>&1 ||
    { echo "[knob_table] $name: evaluation failed (see $OUT/logs/eval_$name.log)" >&2; return 1; }
  echo "[knob_table] $(date +%T) $name: done" >&2
}

SELECTED=()
for k in "${KNOBS[@]}"; do
  n=${k%%|*}
  if [ -z "$ONLY" ] || [[ ",$ONLY," == *",$n,"* ]]; then SELECTED+=("$k"); fi
done
[ ${#SELECTED[@]} -gt 0 ] || die "--only named no knob (known: $(printf '%s ' "${KNOBS[@]%%|*}"))"

if [ "$DRY" = 1 ]; then
  for k in "${SELECTED[@]}"; do echo "# ${k%%|*}"; commands "$k"; done
  exit 0
fi
mkdir -p "$OUT" "$RUNS"
export -f run_knob commands
export ROOT DATA RUNS OUT EPOCHS DECAY
printf '%s\0' "${SELECTED[@]}" | xargs -0 -P "$LANES" -I{} bash -c 'run_knob "$1"' _ {}
echo "[knob_table] all done: npx cmc report $OUT" >&2
