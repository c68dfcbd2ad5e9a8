#!/usr/bin/env bash
# The evaluation protocol of one encoder (a CMC or supervised checkpoint, or a random-init network), as the
# README reports it. For each probe layer:
#   weight-decay selection and the final probe in one `cmc probe --select_wd` run (features computed
#   once): one head per candidate weight decay, trained on 90 % of the TRAIN split (--val_split 0.1, stratified and seeded) and scored by its best top-1
#   on the held-out 10 %; the test split plays no part in the choice; then a head with the chosen weight
#   decay on the whole train split for the fixed schedule: its accuracy after the last epoch is the number
#   reported (with a single --wds value, just that final probe: --final_val_split 0, the default, reports its last
#   epoch; F > 0 the epoch chosen on F of train held out);
# then `cmc knn` (weighted kNN on the embeddings, k 200, T 0.07).
#
# Usage:
#   train/results/eval_protocol.sh --checkpoint runs/<run>/current.ckpt --data ../shared/data/imagenette64-sub --out results/imagenette
#   train/results/eval_protocol.sh --random alexnet_small --image_size 64 --data ../shared/data/imagenette64-sub --out results/imagenette
#   train/results/eval_protocol.sh --checkpoint runs/<run>/ckpt_epoch_10.ckpt --layers 5 --data ... --out results/imagenette
#   ... [--name cmc] [--layers 1,2,3,4,5,6,7,8] [--wds 0,1e-4,5e-4] [--val_split 0.1] [--final_val_split 0]
#       [--epochs 60] [--mode cached] [--seed 0] [--no_knn] [-- <more cmc probe/knn options, e.g. --backend wasm --workers 1>]
#
# Output in --out (the names `cmc report` reads; see train/results/report.ts):
#   probe_<name>_layer<L>.json   final probe (stdout of cmc probe --json)
#   wd_<name>_layer<L>.json      the selection: {layer, val_split, chosen, candidates: [{weight_decay, val_top1, ...}]}
#                                (copied from the probe JSON's wd_selection)
#   knn_<name>.json              cmc knn --json
#   encoder_<name>.json          what was evaluated: checkpoint path, objective, arch, epoch, SGD steps, training time
#   heads/ the linear heads; logs/ stderr of each run
# <name> defaults to cmc / supervised (from the checkpoint) or random, with _epoch<N> for ckpt_epoch_N.ckpt.
# Work whose JSON exists is skipped, so an interrupted protocol resumes where it stopped (delete a JSON to redo it).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CKPT='' RANDOM_MODEL='' IMAGE_SIZE='' DATA='' OUT='' NAME=''
LAYERS='1,2,3,4,5,6,7,8' WDS='0,1e-4,5e-4' VAL_SPLIT=0.1 FINAL_VAL_SPLIT=0 EPOCHS=60 MODE=cached SEED=0 KNN=1
EXTRA=()

die() { echo "eval_protocol: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case $1 in
    --checkpoint) CKPT=$2; shift 2 ;;
    --random) RANDOM_MODEL=$2; shift 2 ;;
    --image_size) IMAGE_SIZE=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --name) NAME=$2; shift 2 ;;
    --layers) LAYERS=$2; shift 2 ;;
    --wds) WDS=$2; shift 2 ;;
    --val_split) VAL_SPLIT=$2; shift 2 ;;
    --final_val_split) FINAL_VAL_SPLIT=$2; shift 2 ;;
    --epochs) EPOCHS=$2; shift 2 ;;
    --mode) MODE=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --no_knn) KNN=0; shift ;;
    -h|--help) usage 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "eval_protocol: unknown argument '$1'" >&2; usage 2 ;;
  esac
done

abspath() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }
[ -n "$DATA" ] || die '--data <folder> is required'
[ -n "$OUT" ] || die '--out <dir> is required'
[ -d "$DATA" ] || die "data folder $DATA does not exist"
DATA=$(abspath "$DATA")
OUT=$(abspath "$OUT")
if [ -n "$CKPT" ] && [ -n "$RANDOM_MODEL" ]; then die 'give either --checkpoint or --random, not both'; fi
if [ -n "$CKPT" ]; then
  [ -f "$CKPT" ] || die "checkpoint $CKPT does not exist"
  CKPT=$(abspath "$CKPT")
  ENC=(--checkpoint "$CKPT")
elif [ -n "$RANDOM_MODEL" ]; then
  [ -n "$IMAGE_SIZE" ] || die '--random needs --image_size'
  ENC=(--random --model "$RANDOM_MODEL" --image_size "$IMAGE_SIZE")
else
  die 'give --checkpoint <ckpt> or --random <model> --image_size <px>'
fi
IFS=', ' read -r -a LAYER_LIST <<< "$LAYERS"
IFS=', ' read -r -a WD_LIST <<< "$WDS"
[ ${#LAYER_LIST[@]} -gt 0 ] && [ ${#WD_LIST[@]} -gt 0 ] || die 'empty --layers or --wds'
if [ ${#WD_LIST[@]} -gt 1 ] && [ "$VAL_SPLIT" = 0 ]; then die 'choosing among several --wds needs --val_split > 0'; fi

# Commands run from the repository root (paths above are absolute): npx finds the project's `cmc` there.
cmc() { (cd "$ROOT" && npx --no-install cmc "$@"); }
node_ts() { (cd "$ROOT" && node --import tsx "$@"); }
log() { printf '[eval_protocol %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# Keep the last JSON line of a command's stdout (the result); fail if there is none.
json_only() { node -e '
  const lines = require("fs").readFileSync(0, "utf8").split("\n").filter((l) => l.trim().startsWith("{"));
  for (let i = lines.length - 1; i >= 0; i--) { try { JSON.parse(lines[i]); console.log(lines[i]); process.exit(0); } catch {} }
  console.error("eval_protocol: the command printed no JSON result"); process.exit(1);'; }
# run_json <file> <log> cmc-args...: run unless <file> exists; stdout's JSON -> <file> (atomically), stderr -> <log>.
run_json() {
  local file=$1 logf=$2; shift 2
  if [ -s "$file" ]; then log "exists, skipped: ${file#"$OUT"/}"; return 0; fi
  log "run: cmc $* (log: ${logf#"$OUT"/})"
  local t0=$SECONDS
  if ! cmc "$@" "${EXTRA[@]}" --json 2> "$logf" | json_only > "$file.tmp"; then
    rm -f "$file.tmp"
    tail -n 5 "$logf" >&2 || true
    die "failed: cmc $* (see $logf)"
  fi
  mv "$file.tmp" "$file"
  log "done in $((SECONDS - t0)) s: ${file#"$OUT"/}"
}

mkdir -p "$OUT/heads" "$OUT/logs"

# What is being evaluated (also gives the default name).
INFO_TMP=$(mktemp)
trap 'rm -f "$INFO_TMP"' EXIT
if [ -n "$CKPT" ]; then
  node_ts -e 'import(process.argv[1]).then((m) => { const i = m.checkpointInfo(process.argv[2]);
    if (!i) { console.error(`eval_protocol: ${process.argv[2]} is not a readable cmc checkpoint`); process.exit(1); }
    console.log(JSON.stringify(i)); })' "$ROOT/train/results/results.ts" "$CKPT" > "$INFO_TMP"
  if [ -z "$NAME" ]; then
    NAME=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).objective)' "$INFO_TMP")
    case $(basename "$CKPT") in ckpt_epoch_*.ckpt) E=$(basename "$CKPT" .ckpt); NAME="${NAME}_epoch${E#ckpt_epoch_}" ;; esac
  fi
else
  node -e 'console.log(JSON.stringify({ encoder: "random", objective: "random", arch: process.argv[1], image_size: Number(process.argv[2]), epoch: 0, step: 0 }))' \
    "$RANDOM_MODEL" "$IMAGE_SIZE" > "$INFO_TMP"
  NAME=${NAME:-random}
fi
case $NAME in *[!A-Za-z0-9._-]*|'') die "--name must be letters, digits, '.', '_' or '-' (got '$NAME')" ;; esac
[ -s "$OUT/encoder_$NAME.json" ] || cp "$INFO_TMP" "$OUT/encoder_$NAME.json"
log "encoder $NAME: $(cat "$OUT/encoder_$NAME.json")"
log "data $DATA -> $OUT; layers ${LAYER_LIST[*]}; weight decays ${WD_LIST[*]} (held-out $VAL_SPLIT of train); $EPOCHS epochs, mode $MODE, seed $SEED"

PROBE=(probe "${ENC[@]}" --data_folder "$DATA" --mode "$MODE" --epochs "$EPOCHS" --seed "$SEED")
for L in "${LAYER_LIST[@]}"; do
  FINAL="$OUT/probe_${NAME}_layer$L.json"
  SEL="$OUT/wd_${NAME}_layer$L.json"
  if [ ${#WD_LIST[@]} -gt 1 ]; then
    # One run per layer: the features are computed once, one head per weight decay on 1 - val_split of train,
    # the choice by held-out top-1 (ties: the earlier value), then a head with it on all of train (last epoch).
    [ "$MODE" = cached ] || die 'choosing among several --wds needs --mode cached'
    log "layer $L: weight decay from {${WD_LIST[*]}} on held-out $VAL_SPLIT of train, then all of train"
    WDS_CSV=$(IFS=,; echo "${WD_LIST[*]}")
    run_json "$FINAL" "$OUT/logs/probe_${NAME}_layer$L.log" "${PROBE[@]}" --layer "$L" --select_wd "$WDS_CSV" \
      --val_split "$VAL_SPLIT" --out "$OUT/heads/linear_${NAME}_layer$L.json"
    [ -s "$SEL" ] || node -e '
      const fs = require("fs");
      const [final, out, layer] = process.argv.slice(1);
      const s = JSON.parse(fs.readFileSync(final, "utf8")).wd_selection;
      if (!s) { console.error(`eval_protocol: ${final} has no wd_selection`); process.exit(1); }
      fs.writeFileSync(out, JSON.stringify({ layer: Number(layer), ...s }) + "\n");' "$FINAL" "$SEL" "$L"
  else
    [ -s "$SEL" ] || printf '{"layer":%s,"val_split":0,"chosen":%s,"candidates":[]}\n' "$L" "${WD_LIST[0]}" > "$SEL"
    run_json "$FINAL" "$OUT/logs/probe_${NAME}_layer$L.log" "${PROBE[@]}" --layer "$L" --weight_decay "${WD_LIST[0]}" \
      --val_split "$FINAL_VAL_SPLIT" --out "$OUT/heads/linear_${NAME}_layer$L.json"
  fi
  log "layer $L: $(node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(j.candidates.length ? `weight decay ${j.chosen} (` + j.candidates.map((c) => `${c.weight_decay}: ${(100 * c.val_top1).toFixed(2)}% held out`).join(", ") + ")" : `weight decay ${j.chosen} (the only candidate)`)' "$SEL")"
done

if [ "$KNN" = 1 ]; then
  run_json "$OUT/knn_$NAME.json" "$OUT/logs/knn_$NAME.log" knn "${ENC[@]}" --data_folder "$DATA" --seed "$SEED"
fi
log "finished $NAME; summarise with: npx cmc report $OUT"
