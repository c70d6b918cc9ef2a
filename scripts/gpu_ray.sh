#!/usr/bin/env bash
# sweep.launcher=ray against the local launcher on the one-GPU machine (no registry, no hub): the same studies,
# 2 workers each, `sweep.workers=2` (local) or `sweep.launcher=ray sweep.workers=2 sweep.ray.gpus_per_worker=0.5`.
# The carry is data/gpu/ray_carry.tar.xz (`scripts/gpu_carry.py ray`: the wheels, Ray core, the MiniLM
# tokenizer), unpacked once per machine under /tmp, which a warm machine keeps between calls.
#
#   bash scripts/gpu_ray.sh head       # data=synthetic_scale (113 x 58K), TF-IDF + the head on cuda, N trials;
#                                      # a 2-trial warm-up builds the features first, so neither side pays them
#   bash scripts/gpu_ray.sh finetune   # the ModernBERT-base shape (random init) fine-tuned per trial, eager
#                                      # (model.compile=false: no cold compile on either side), FT_N texts,
#                                      # 1 epoch, no baselines (every trial fine-tunes)
#
# ORDER ("local ray" for head, "local ray ray local" for finetune) says which launcher runs when, so that a
# drift over the call shows as two runs of one launcher disagreeing. Each run: its own study, its wall time,
# trials per hour (N x 3600 / wall), one JSON summary (scripts/gpu_summary.py) in $R and $OUT.
# Env: BUDGET (seconds, 560), N (head trials 50, fine-tune trials 8), FT_N (12000), PY (python3), SITE.
set -uo pipefail
STAGE=${1:?stage: head or finetune}
BUDGET=${BUDGET:-560}
PY=${PY:-python3}
T0=$(date +%s)
OUT=${OUT:-/tmp/gpu_out}
R=${RESULTS:-/tmp/gpu_ray_res}
ROOT=${ROOT:-/tmp/gpu_ray_root}
SITE=${SITE:-/tmp/site_ray}
G=data/gpu
mkdir -p "$R" "$OUT" "$ROOT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false RAY_USAGE_STATS_ENABLED=0
left() { echo $((BUDGET - ($(date +%s) - T0))); }
log() { echo "[$STAGE +$(($(date +%s) - T0))s] $*" | tee -a "$R/session.log"; }
collect() { tar czf "$OUT/ray_results.tar.gz" -C "$R" . 2>/dev/null; cp "$R/session.log" "$R"/*.json "$OUT/" 2>/dev/null; }
trap collect EXIT

if [ ! -f "$SITE/.unpacked" ]; then
  log "setup: $($PY -V 2>&1), $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1 | head -1), $(nproc) CPUs"
  tar -C $G -xJf $G/ray_carry.tar.xz || { log "unpack failed"; exit 1; }
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" $G/wheels/*.whl \
    >"$R/pip.log" 2>&1 || { log "pip install failed: $(tail -3 "$R/pip.log")"; exit 1; }
  cp -a $G/ray_site/. "$SITE/"
  PYTHONPATH=$SITE:$PWD/src $PY scripts/gpu_carry.py modernbert-shape $G/minilm /tmp/modernbert_shape >>"$R/pip.log" 2>&1
  touch "$SITE/.unpacked"
fi
export PYTHONPATH=$SITE:$PWD/src
log "ray $($PY -c 'import ray; print(ray.__version__)' 2>&1 | tail -1)"

run() {  # run NAME LAUNCHER N OVERRIDES...: one study of N trials with 2 workers, its wall time and summary
  local name=$1 launcher=$2 n=$3 s rc wall
  shift 3
  local how="sweep.workers=2"
  [ "$launcher" = ray ] && how="sweep.launcher=ray sweep.workers=2 sweep.ray.gpus_per_worker=0.5"
  [ "$(left)" -lt 60 ] && { log "$name: no time left"; return 1; }
  rm -rf "$ROOT/data/cache/logits"  # every study fine-tunes / fits its own trials
  s=$(date +%s.%N)
  timeout -s INT -k 30 $(($(left) - 30)) $PY -m sweep sweep "$@" $how sweep.total_trials="$n" \
    sweep.study_name="$name" >"$R/$name.log" 2>&1
  rc=$?
  wall=$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $s}")
  $PY scripts/gpu_summary.py "$name" "$@" >"$R/$name.json" 2>>"$R/$name.log"
  log "$name ($launcher): rc=$rc wall=${wall}s trials/hour=$(awk "BEGIN{printf \"%.0f\", $n * 3600 / $wall}")" \
    "$(grep -h 'trials by Ray node' "$R/$name.log" | tail -1)"
  log "$(cut -c1-400 "$R/$name.json")"
}

if [ "$STAGE" = head ]; then
  H="paths.root=$ROOT data=${DATA:-synthetic_scale} model.head.device=${HEAD_DEVICE:-cuda} sweep.progress=false"
  N=${N:-50}
  run head-warmup local 2 $H
  for launcher in ${ORDER:-local ray}; do
    run "head-$launcher-$(date +%s)" "$launcher" "$N" $H
  done
elif [ "$STAGE" = finetune ]; then
  F="paths.root=$ROOT data=synthetic_scale data.n=${FT_N:-12000} model=modernbert_base"
  F="$F model.pretrained=/tmp/modernbert_shape ++model.random_init=true model.compile=false model.epochs=1"
  F="$F ++model.gpu_memory_gib=30 sweep.baselines=null sweep.progress=false"
  N=${N:-8}
  for launcher in ${ORDER:-local ray ray local}; do
    run "ft-$launcher-$(date +%s)" "$launcher" "$N" $F
  done
fi
log "done"
