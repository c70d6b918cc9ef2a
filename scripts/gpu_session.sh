#!/usr/bin/env bash
# The whole GPU session on the device machine (no package registry, no hub), one command per stage:
# unpack data/gpu/carry.tar.xz (scripts/gpu_carry.py), install its wheels, run the sweeps through Hydra +
# Optuna + MLflow, and leave the results under $OUT (at most 8 files come back: results.tar.gz holds all).
#
#   bash scripts/gpu_session.sh minilm       # (a) minilm_finetune sweep, 6 trials + export
#                                            # (b) minilm_decoupled sweep, 50 trials + export
#                                            # (c) alpha 0 / 0.5 / 1: full fine-tune vs decoupled, bootstrap CIs
#   bash scripts/gpu_session.sh modernbert   # (d) modernbert_decoupled (random init) on data=synthetic_scale
#   bash scripts/gpu_session.sh head         # (e) the head on the GPU: GPU-vs-CPU test, make bench on
#                                            #     data=synthetic_scale (113 x 58K), 50 trials, head on cuda
#   bash scripts/gpu_session.sh finetune     # (g) the seed's per-trial fine-tune (model=modernbert_base,
#                                            #     ModernBERT-base shape) with 1, 2, 4 workers on one GPU
#   bash scripts/gpu_session.sh benchgpu     # (h) make bench-gpu, ModernBERT-base: Trainer bf16 vs the harness's
#                                            #     compiled variants (VARIANTS), the correctness table
#
# Env: BUDGET (seconds for the whole command, default 570), PY (python3), SKIP_SETUP=1 (already installed),
# DATA / FULL_EXTRA / DEC_EXTRA / MB_EXTRA (extra overrides: a CPU dry run uses tiny settings), N_DEC (50),
# MB (a model folder instead of the ModernBERT-base shape), WORKERS (4, stage modernbert), WORKER_LIST
# ("2 1 4", stage finetune: W workers run W trials; the first W pays torch.compile's cold compile, the later
# ones find its cache warm, as every trial of a long sweep after the first does).
set -uo pipefail
STAGE=${1:-minilm}
BUDGET=${BUDGET:-570}
PY=${PY:-python3}
T0=$(date +%s)
OUT=${OUT:-/tmp/gpu_out}
R=${RESULTS:-/tmp/gpu_results}  # everything; $OUT gets results.tar.gz and a few files (8 come back at most)
rm -rf "$R" && mkdir -p "$R" "$OUT"  # a warm machine keeps /tmp: start clean
export REPORT_DIR=$R PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
G=data/gpu

left() { echo $((BUDGET - ($(date +%s) - T0))); }
cap() { local l; l=$(($(left) - $2)); echo $((l < $1 ? (l > 5 ? l : 5) : $1)); }  # min(want, left - reserve)
lines() { tr '\r' '\n' <"$1"; }  # progress bars write \r: one log line each
log() { echo "[session +$(($(date +%s) - T0))s] $*" | tee -a "$R/session.log"; }
timed() {  # timed NAME SECONDS cmd...: run with a time limit, log wall time and exit code, output to NAME.log
  local name=$1 limit=$2 s e rc
  shift 2
  s=$(date +%s.%N)
  timeout -s INT -k 30 "$limit" "$@" >"$R/$name.log" 2>&1  # SIGINT: trials in flight end as KILLED runs
  rc=$?
  e=$(date +%s.%N)
  log "$name: rc=$rc wall=$(awk "BEGIN{printf \"%.1f\", $e - $s}")s (limit ${limit}s)"
  return $rc
}
collect() {
  tar czf "$OUT/results.tar.gz" -C "$R" . 2>/dev/null
  cp "$R"/session.log "$R"/*.md "$R"/pareto_*.csv "$R"/runs_*.csv "$OUT"/ 2>/dev/null
  ls "$OUT"
}
trap collect EXIT

modernbert_shape() {  # MB: the given model folder, else the ModernBERT-base shape written here by transformers
  MB=${MB:-}
  if [ -z "$MB" ]; then
    MB=$PWD/$G/modernbert_shape
    $PY scripts/gpu_carry.py modernbert-shape $G/minilm "$MB" >>"$R/report.log" 2>&1
  fi
}

if [ "${SKIP_SETUP:-0}" != 1 ]; then
  log "setup: $($PY -V 2>&1), $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1 | head -1)"
  tar -C $G -xJf $G/carry.tar.xz || { log "unpack failed"; exit 1; }
  mkdir -p data/raw/cfpb_sample && cp $G/cfpb_sample/*.csv data/raw/cfpb_sample/
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $G/wheels/*.whl \
    >"$R/pip.log" 2>&1 || { log "pip install failed: $(tail -3 "$R/pip.log")"; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD/src
  $PY -m pip list 2>/dev/null | grep -i -E "^(torch|transformers|optuna|mlflow|hydra|numpy|pandas|scipy|scikit)" \
    >"$R/versions.txt"
  log "installed: $(tr -s ' ' <"$R/versions.txt" | tr '\n' ';')"
fi
$PY -c "import optuna, mlflow, hydra, torch; print('imports ok, cuda', torch.cuda.is_available())" 2>&1 | tail -1 |
  tee -a "$R/session.log"

if [ "$STAGE" = minilm ]; then
  M=$PWD/$G/minilm
  DATA=${DATA:-cfpb_sample}
  FULL="data=$DATA model=minilm_finetune model.pretrained=$M ${FULL_EXTRA:-}"
  DEC="data=$DATA model=minilm_decoupled model.finetune.pretrained=$M ${DEC_EXTRA:-}"
  # (a) the per-trial fine-tune, through the whole stack
  timed a_sweep "$(cap 210 330)" $PY -m sweep sweep $FULL sweep.n_trials=6 sweep.study_name=gpu-minilm-finetune
  timed a_export "$(cap 60 300)" $PY -m sweep export $FULL study=gpu-minilm-finetune \
    out="$R/pareto_minilm_finetune.csv"
  $PY scripts/gpu_report.py runs gpu-minilm-finetune $FULL >>"$R/report.log" 2>&1
  log "(a) fine-tunes: $(lines "$R/a_sweep.log" | grep -c 'finetune minilm_finetune:')"
  # (b) decoupled: one fine-tune, then head fits only
  timed b_sweep "$(cap 240 90)" $PY -m sweep sweep $DEC sweep.n_trials="${N_DEC:-50}" \
    sweep.study_name=gpu-minilm-decoupled
  log "(b) fine-tunes: $(lines "$R/b_sweep.log" | grep -c 'finetuned features: fine-tune');" \
    "$(lines "$R/b_sweep.log" | grep -m1 'finetuned features: fine-tune')"
  timed b_export "$(cap 60 60)" $PY -m sweep export $DEC study=gpu-minilm-decoupled \
    out="$R/pareto_minilm_decoupled.csv"
  $PY scripts/gpu_report.py runs gpu-minilm-decoupled $DEC >>"$R/report.log" 2>&1
  # (c) alpha 0 and 0.5 hit the sweeps' logits caches; alpha 1 costs one fine-tune and one head fit
  timed c_compare "$(cap 120 10)" $PY scripts/gpu_report.py compare 0.0,0.5,1.0 "${FULL// /,}" "${DEC// /,}"
  [ "$(left)" -gt 60 ] && timed c_l2 "$(cap 60 5)" $PY scripts/gpu_report.py l2 $DEC
elif [ "$STAGE" = modernbert ]; then
  modernbert_shape
  D="data=${DATA:-synthetic_scale} model=modernbert_decoupled model.finetune.pretrained=$MB"
  D="$D model.finetune.random_init=true"
  D="$D ${MB_EXTRA:-}"
  W=${WORKERS:-4}
  timed d_sweep "$(cap 480 40)" $PY -m sweep sweep $D sweep.workers="$W" sweep.total_trials="${N_DEC:-50}" \
    sweep.study_name=gpu-modernbert-decoupled
  log "(d) fine-tunes: $(lines "$R/d_sweep.log" | grep -c 'finetuned features: fine-tune');" \
    "$(lines "$R/d_sweep.log" | grep -m1 'finetuned features: fine-tune')"
  $PY scripts/gpu_report.py runs gpu-modernbert-decoupled $D >>"$R/report.log" 2>&1
  [ "$(left)" -gt 40 ] && timed d_export "$(cap 60 5)" $PY -m sweep export $D study=gpu-modernbert-decoupled \
    out="$R/pareto_modernbert_decoupled.csv"
elif [ "$STAGE" = finetune ]; then
  modernbert_shape
  # no baselines: their alpha-0 twins would hit the logits cache; every trial here fine-tunes
  F="data=${DATA:-synthetic_scale} model=modernbert_base model.pretrained=$MB ++model.random_init=true"
  F="$F sweep.baselines=null ${FT_EXTRA:-}"
  nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv -lms 2000 >"$R/smi.csv" 2>&1 &
  SMI=$!
  # the first run has no learned peak yet: it gives its need (FIRST_GIB), so that its workers start together
  # instead of one measuring alone; the later runs ask for what the first ones learned (models/gpu_share.py)
  GIVEN="++model.gpu_memory_gib=${FIRST_GIB:-30}"
  for W in ${WORKER_LIST:-2 1 4}; do
    N=$W
    rm -rf data/cache/logits  # the studies' samplers start alike: no trial may reuse another's fine-tune
    timed "g_w$W" "$(cap 420 20)" $PY -m sweep sweep $F $GIVEN sweep.workers="$W" sweep.total_trials=$N \
      sweep.study_name="gpu-finetune-w$W"
    GIVEN=""
    cp data/cache/gpu_share.json "$R/gpu_share_after_w$W.json" 2>/dev/null
    log "(g) $W workers: $(lines "$R/g_w$W.log" | grep -c 'finetune modernbert_base:') fine-tunes;" \
      "$(lines "$R/g_w$W.log" | grep -c 'waiting for') waits; $(lines "$R/g_w$W.log" | grep -m1 'fine-tune peak')"
    $PY scripts/gpu_report.py runs "gpu-finetune-w$W" $F >>"$R/report.log" 2>&1
  done
  kill $SMI 2>/dev/null
  log "(g) GPU memory used, max MiB: $(awk -F', ' 'NR>1{gsub(/ MiB/,"",$2); if($2>m)m=$2} END{print m}' "$R/smi.csv")"
elif [ "$STAGE" = benchgpu ]; then
  V=${VARIANTS:-packed64k_compiled,packed64k_cudagraphs,packed64k_autotune,packed128k_compiled}
  timed h_bench "$(cap 560 10)" $PY -m sweep.bench.gpu --skip-real --refs bf16 --models ModernBERT-base --variants "$V" \
    --minilm "$PWD/$G/minilm" --json "$OUT/bench.json"
  lines "$R/h_bench.log" | sed -n '/^== sweep.bench.gpu/,$p' | tee -a "$R/session.log"
elif [ "$STAGE" = head ]; then
  timed e_test "$(cap 120 200)" $PY -m pytest -q -m gpu tests/models/test_head.py tests/models/test_gpu_share.py -p no:cacheprovider
  lines "$R/e_test.log" | tail -3 | tee -a "$R/session.log"
  timed e_bench "$(cap 420 10)" $PY -m sweep bench data=synthetic_scale model.head.device=cuda \
    trials="${N_DEC:-50}" naive_every=0 ideas="${IDEAS:-12}"
  lines "$R/e_bench.log" | sed -n '/^bench on/,$p' | tee -a "$R/session.log"
fi
grep -h '^{' "$R/report.log" 2>/dev/null | tee -a "$R/session.log" >/dev/null
log "done"
