#!/usr/bin/env bash
# The fine-tune sweep's measurements on the GPU machine (no registry, no hub), one stage per device call. The
# carry (data/gpu/carry.tar.xz, scripts/gpu_carry.py) is unpacked once per machine under /tmp, which a warm
# machine keeps between calls; every study lives under one root there ($ROOT), results under $R, copies in $OUT.
#
#   bash scripts/gpu_finetune.sh quality   # MiniLM on the CFPB sample with a long tail (data.imbalance_ratio=50),
#                                          # 4 sweeps of 50 trials, same seed: (a) full, (b) model.reweight_from=0.5,
#                                          # (c) sweep.pruner=halving, (d) both; exports, hypervolumes vs (a);
#                                          # SWEEPS picks which and in what order (a warm machine keeps the rest)
#   bash scripts/gpu_finetune.sh mprobe    # MiniLM's first compiled step in a fresh process: empty compile cache,
#                                          # then a copy of sweep (a)'s (what a second process or machine finds)
#   bash scripts/gpu_finetune.sh cold      # ModernBERT-base shape, 58K x 113 (data=synthetic_scale): reweight_from
#                                          # 0.5 + halving, 50 trials, 2 workers, empty caches; in the background
#   bash scripts/gpu_finetune.sh wait      # until the background sweep ends (or the budget), then its summary
#   bash scripts/gpu_finetune.sh probe     # one process compiling from a copy of the compile cache (a fresh
#                                          # machine given the folder), with /tmp's default cache removed
#
# Env: BUDGET (seconds, default 560), WORKERS (2), EPOCHS (MiniLM epochs, 2), N (trials, 50), SWEEPS ("a b c d"),
# Q_EXTRA / MB_EXTRA
# (extra overrides: a CPU dry run gives tiny settings), DATA / MB_DATA, MINILM / MB (model folders), PY (python3),
# SITE (/tmp/site; a folder holding .unpacked skips the setup).
set -uo pipefail
STAGE=${1:?stage: quality, mprobe, cold, wait or probe}
BUDGET=${BUDGET:-560}
PY=${PY:-python3}
T0=$(date +%s)
OUT=${OUT:-/tmp/gpu_out}
R=${RESULTS:-/tmp/gpu_res}
ROOT=${ROOT:-/tmp/gpu_root}
SITE=${SITE:-/tmp/site}
G=data/gpu
W=${WORKERS:-2}
N=${N:-50}
mkdir -p "$R" "$OUT" "$ROOT/data/raw/cfpb_sample"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
left() { echo $((BUDGET - ($(date +%s) - T0))); }
log() { echo "[$STAGE +$(($(date +%s) - T0))s] $*" | tee -a "$R/session.log"; }
timed() {  # timed NAME LIMIT cmd...: wall time and exit code in the session log, output in NAME.log
  local name=$1 limit=$2 s rc
  shift 2
  s=$(date +%s.%N)
  timeout -s INT -k 30 "$limit" "$@" >"$R/$name.log" 2>&1
  rc=$?
  log "$name: rc=$rc wall=$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $s}")s (limit ${limit}s)"
  return $rc
}
collect() { tar czf "$OUT/results.tar.gz" -C "$R" . 2>/dev/null; cp "$R/session.log" "$R"/*.json "$OUT/" 2>/dev/null; }
trap collect EXIT

if [ ! -f "$SITE/.unpacked" ]; then
  log "setup: $($PY -V 2>&1), $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1 | head -1)"
  tar -C $G -xJf $G/carry.tar.xz || { log "unpack failed"; exit 1; }
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" $G/wheels/*.whl \
    >"$R/pip.log" 2>&1 || { log "pip install failed: $(tail -3 "$R/pip.log")"; exit 1; }
  cp -r $G/minilm /tmp/minilm
  cp $G/cfpb_sample/*.csv "$ROOT/data/raw/cfpb_sample/"
  PYTHONPATH=$SITE:$PWD/src $PY scripts/gpu_carry.py modernbert-shape /tmp/minilm /tmp/modernbert_shape >>"$R/pip.log" 2>&1
  touch "$SITE/.unpacked"
fi
export PYTHONPATH=$SITE:$PWD/src
summary() { $PY scripts/gpu_summary.py "$@"; }  # STUDY OVERRIDES...: one JSON line (states, span, front)

Q="paths.root=$ROOT data=${DATA:-cfpb_sample} data.imbalance_ratio=50 model=minilm_finetune model.pretrained=${MINILM:-/tmp/minilm}"
Q="$Q model.epochs=${EPOCHS:-2} ++model.gpu_memory_gib=8 sweep.progress=false ${Q_EXTRA:-}"
if [ "$STAGE" = quality ]; then
  # each sweep its own cache: a sweep must not reuse another's logits (same seed, same first trials)
  declare -A EXTRA=([a]="" [b]="model.reweight_from=0.5" [c]="sweep.pruner=halving"
    [d]="model.reweight_from=0.5 sweep.pruner=halving")
  SWEEPS=${SWEEPS:-a b c d}
  for s in $SWEEPS; do  # each sweep exported (test re-scoring) and compared with (a) before the next begins
    [ "$(left)" -lt 60 ] && { log "no time left for ($s)"; break; }
    EXTRA[$s]="${EXTRA[$s]} paths.cache_dir=$ROOT/cache_$s"
    timed "q_$s" $(($(left) - 45)) $PY -m sweep sweep $Q ${EXTRA[$s]} sweep.workers="$W" sweep.total_trials="$N" \
      sweep.study_name="lt50-$s"
    summary "lt50-$s" $Q ${EXTRA[$s]} >"$R/q_$s.json" 2>>"$R/q_$s.log"
    log "($s) $(cat "$R/q_$s.json" | cut -c1-300)"
    timed "x_$s" 90 $PY -m sweep export $Q ${EXTRA[$s]} study="lt50-$s" out="$R/pareto_lt50_$s.csv"
    cp "$R/pareto_lt50_$s.csv" "$OUT/" 2>/dev/null
    [ "$s" = a ] || [ ! -f "$R/q_a.json" ] && continue
    timed "hv_$s" 90 $PY -m sweep.report.hypervolume lt50-a "lt50-$s" $Q
    sed -n '/^{/,$p' "$R/hv_$s.log" >"$R/hv_a_vs_$s.json"
  done
elif [ "$STAGE" = mprobe ]; then
  P="$Q model.epochs=0.05 sweep.pruner=none paths.cache_dir=$ROOT/cache_probe"
  rm -rf "$ROOT/cache_probe" /tmp/compile_empty /tmp/compile_copy /tmp/torchinductor_"$(whoami)"
  TORCHINDUCTOR_CACHE_DIR=/tmp/compile_empty timed mprobe_cold 200 $PY -m sweep train $P
  grep -h "torch.compile: the first step" "$R/mprobe_cold.log" | sed 's/^/cold: /' | tee -a "$R/session.log"
  rm -rf "$ROOT/cache_probe" && cp -r "$ROOT/cache_a/compile" /tmp/compile_copy
  TORCHINDUCTOR_CACHE_DIR=/tmp/compile_copy timed mprobe_warm 200 $PY -m sweep train $P
  grep -h "torch.compile: the first step" "$R/mprobe_warm.log" | sed 's/^/warm: /' | tee -a "$R/session.log"
elif [ "$STAGE" = cold ]; then
  rm -rf "$ROOT/data/cache/compile" "$ROOT/data/cache/prefix" "$ROOT/data/cache/logits" /tmp/torchinductor_"$(whoami)"
  M="paths.root=$ROOT data=${MB_DATA:-synthetic_scale} model=modernbert_base model.pretrained=${MB:-/tmp/modernbert_shape}"
  M="$M ++model.random_init=true ++model.gpu_memory_gib=40 sweep.progress=false ${MB_EXTRA:-}"
  M="$M model.reweight_from=0.5 sweep.pruner=halving"
  echo "$M" >"$R/mb_overrides"
  setsid bash -c "s=\$(date +%s.%N); $PY -m sweep sweep $M sweep.workers=$W sweep.total_trials=$N \
    sweep.study_name=mb-drw-halving >$R/mb_cold.log 2>&1; echo \"rc=\$? wall=\$(awk \"BEGIN{print \$(date +%s.%N) - \$s}\")\" \
    >$R/mb_cold.done" </dev/null >/dev/null 2>&1 &
  log "cold sweep started in the background (pid $!)"
  STAGE=wait
fi
if [ "$STAGE" = wait ]; then
  while [ ! -f "$R/mb_cold.done" ] && [ "$(left)" -gt 15 ]; do sleep 5; done
  grep -h "torch.compile: the first step\|sweep done\|Pareto front" "$R/mb_cold.log" | tee -a "$R/session.log"
  if [ -f "$R/mb_cold.done" ]; then
    log "cold sweep: $(cat "$R/mb_cold.done")"
    summary mb-drw-halving $(cat "$R/mb_overrides") >"$R/mb_cold.json" 2>>"$R/mb_cold.log"
    log "$(cut -c1-400 "$R/mb_cold.json")"
  else
    log "cold sweep still running: $(grep -c 'finetune modernbert_base' "$R/mb_cold.log") fine-tunes ended so far"
  fi
elif [ "$STAGE" = probe ]; then
  cp -r "$ROOT/data/cache/compile" /tmp/compile_copy && rm -rf /tmp/torchinductor_"$(whoami)"
  M="$(cat "$R/mb_overrides") sweep.pruner=none model.epochs=0.02"
  TORCHINDUCTOR_CACHE_DIR=/tmp/compile_copy timed probe 300 $PY -m sweep train $M
  grep -h "torch.compile: the first step" "$R/probe.log" | tee -a "$R/session.log"
fi
