#!/usr/bin/env bash
# GPU benchmark, one run of at most 8 minutes (docs/GPU.md): search steps/s at the paper's setting (fp32,
# bf16-mixed + channels_last, + torch.compile) and the 10,000-step search time extrapolated from each; one
# real full search if the fastest rate lets it finish in time; the Lightning + NNI overhead against plain
# PyTorch; retraining steps/s (bf16-mixed) and a short retraining scored on Set12; the search-quality
# benchmark as concurrent processes on the one GPU. Each stage has a time budget: skipped when too little
# is left, killed at its limit, and listed in the summary either way.
#
#   bash benchmarks/gpu_bundle.sh            # here, once: builds .gpu/ (carry it: carry [".gpu"])
#   bash benchmarks/gpu.sh [--out DIR]       # there: $OUT gets summary.md, logs.tar.gz, console.log
#   bash benchmarks/gpu.sh --dry-run         # here: the same path on CPU, tiny sizes, a tiny budget
#
# Options: --budget S (wall seconds in all [480; dry run 120]), --skip a,b (stages to leave out: fp32 fast
# fast_compile full overhead retrain eval quality), --bundle DIR [.gpu], --work DIR (scratch [a temp dir,
# removed]). Installs from the bundle only (no index): nni and its missing dependencies go into a fresh
# --target folder put on PYTHONPATH over the machine's python3 ($PYTHON); in the dry run that python3 is
# a fresh venv that links, from .venv, only what the GPU machine has (benchmarks/_gpu.py mimic).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
DRY=0; BUDGET=""; SKIP=""; BUNDLE=.gpu; WORK=""; OUT="${OUT:-runs/gpu}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --budget) BUDGET="$2"; shift 2 ;;
    --skip) SKIP="$2"; shift 2 ;;
    --bundle) BUNDLE="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    *) echo "error: unknown argument $1 (see the head of benchmarks/gpu.sh)" >&2; exit 2 ;;
  esac
done
[ -f "$BUNDLE/wheels/requirements.txt" ] || { echo "error: no bundle at $BUNDLE: run benchmarks/gpu_bundle.sh" >&2; exit 2; }
BUNDLE="$(cd "$BUNDLE" && pwd)"
mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
KEEP_WORK=1; [ -n "$WORK" ] || { WORK="$(mktemp -d)"; KEEP_WORK=0; }
mkdir -p "$WORK"; WORK="$(cd "$WORK" && pwd)"
exec > >(tee -a "$OUT/console.log") 2>&1
START=$(date +%s)

# -- sizes of each mode: the paper's setting there, tiny here ------------------------------------------
if [ "$DRY" = 1 ]; then
  BUDGET=${BUDGET:-120}; SPACE=tiny; BATCH=4; PATCH=32; LOG_EVERY=2; VALP=4
  declare -A RATE_STEPS=([fp32]=6 [fast]=6 [fast_compile]=6)
  FULL_STEPS=10; RETRAIN_STEPS=6; VAL_EVERY=3; EVAL_FLAGS="--max-images 1"; QUALITY_PROCS=2
  OVERHEAD_FLAGS="--setting tiny --warmup 1 --steps 2 --variants same,bf16"
  QUALITY_FLAGS="--quick --search-steps 12 --steps 2 --networks searched-argmax,random-1 --test-images 1"
  # limit, minimum (s) of each stage; the CPU compile stage is meant to hit its limit (the kill path runs)
  declare -A LIMIT=([check]=60 [fp32]=30 [fast]=30 [fast_compile]=5 [overhead]=30 [retrain]=30 [eval]=20 [quality_summary]=20)
  declare -A MIN=([check]=10 [fp32]=10 [fast]=10 [fast_compile]=3 [overhead]=10 [retrain]=10 [eval]=8 [quality]=15 [quality_summary]=8)
  FULL_RESERVE=20
else
  BUDGET=${BUDGET:-480}; SPACE=denoise; BATCH=32; PATCH=64; LOG_EVERY=50; VALP=32
  declare -A RATE_STEPS=([fp32]=200 [fast]=250 [fast_compile]=400)
  FULL_STEPS=10000; RETRAIN_STEPS=1500; VAL_EVERY=500; EVAL_FLAGS=""; QUALITY_PROCS=12
  OVERHEAD_FLAGS="--setting paper --warmup 3 --steps 10 --variants same,channels_last,bf16"
  QUALITY_FLAGS=""   # quality.py's own default budget (demo space)
  declare -A LIMIT=([check]=90 [fp32]=60 [fast]=50 [fast_compile]=150 [overhead]=45 [retrain]=75 [eval]=30 [quality_summary]=30)
  declare -A MIN=([check]=20 [fp32]=30 [fast]=30 [fast_compile]=60 [overhead]=30 [retrain]=40 [eval]=15 [quality]=90 [quality_summary]=15)
  FULL_RESERVE=20   # the full search comes first: the stages after it get what it leaves
fi
declare -A VARIANT=([fp32]="" [fast]="--channels-last --precision bf16-mixed"
                    [fast_compile]="--channels-last --precision bf16-mixed --compile")
DEADLINE=$(( START + BUDGET - 15 ))   # the last 15 s: summary and tar
TABLE="$WORK/stages.csv"; rm -f "$TABLE"
export CLEARER_DATA_ROOT="$BUNDLE/data" PYTHONUNBUFFERED=1 HOME="$WORK/home" WORK   # NNI writes under ~
mkdir -p "$HOME"
echo "gpu.sh: dry run $DRY, budget $BUDGET s, bundle $BUNDLE, work $WORK, out $OUT"

# -- the base Python: the machine's, or in the dry run a fresh venv that mimics it ---------------------
if [ "$DRY" = 1 ]; then
  BASE=$(.venv/bin/python benchmarks/_gpu.py mimic "$WORK/base-env") || { echo "error: mimic venv failed"; exit 1; }
else
  BASE="${PYTHON:-python3}"
fi
# stage NAME LIMIT MIN CMD...: run under the guard (benchmarks/_gpu.py stage), output in $WORK/NAME.log.
# skip NAME WHY: its row says why it did not run.
skip() { "$BASE" benchmarks/_gpu.py stage --note "$2" "$1" 0 1 "$DEADLINE" "$TABLE" /dev/null -- true; }
stage() {
  local name=$1 limit=$2 min=$3; shift 3
  case ",$SKIP," in *",$name,"*) skip "$name" "left out (--skip)"; return 0 ;; esac
  "$BASE" benchmarks/_gpu.py stage "$name" "$limit" "$min" "$DEADLINE" "$TABLE" "$WORK/$name.log" -- "$@"
}

# -- install from the bundle only, then check what was imported -----------------------------------------
SITE="$WORK/site"
"$BASE" -m pip install -q --no-index --no-deps --no-compile --find-links "$BUNDLE/wheels" --target "$SITE" \
  -r "$BUNDLE/wheels/requirements.txt" > "$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; echo "error: install failed"; }
export PYTHONPATH="$REPO:$SITE"
PY="$BASE"
stage check "${LIMIT[check]}" "${MIN[check]}" "$PY" - "$SITE" "$DRY" <<'EOF'
import os, sys, torch, nni, pytorch_lightning as pl, skimage, pandas
site, dry = sys.argv[1], sys.argv[2] == "1"
cuda = torch.cuda.is_available()
card = torch.cuda.get_device_name(0) if cuda else "none (CPU)"
line = (f"device: {card}; Python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}, "
        f"available {cuda}), nni {nni.__version__} from {nni.__file__}, lightning {pl.__version__}")
print(line)
open(os.path.join(os.environ["WORK"], "device.txt"), "w").write(line + "\n")
assert nni.__file__.startswith(site), f"nni was not imported from the bundle's install ({site})"
assert cuda or dry, "no CUDA GPU seen: nothing to measure"
EOF
CHECK=$(tail -1 "$TABLE" | cut -d, -f2)
cat "$WORK/check.log"

# -- search steps/s at the setting, each variant ---------------------------------------------------------
search() {  # NAME STEPS FLAGS...: one search into $WORK/search_NAME
  local name=$1 steps=$2; shift 2
  echo -m clearer_nni.search --space "$SPACE" --data bsds500 --batch-size "$BATCH" --patch-size "$PATCH" \
    --steps "$steps" --warmup-steps $(( steps / 10 )) --log-every "$LOG_EVERY" --val-patches "$VALP" \
    --checkpoint-every 0 --no-progress --no-supernet --out "$WORK/search_$name" --overwrite "$@"
}
if [ "$CHECK" = ok ]; then
  for v in fp32 fast fast_compile; do
    # shellcheck disable=SC2046,SC2086
    stage "$v" "${LIMIT[$v]}" "${MIN[$v]}" "$PY" $(search "$v" "${RATE_STEPS[$v]}" ${VARIANT[$v]})
  done

  # -- one full search, if the fastest rate lets it finish and leave FULL_RESERVE ------------------------
  read -r FAST NEED < <("$PY" benchmarks/_gpu.py predict "$WORK" "$FULL_STEPS")
  if [ -z "${FAST:-}" ] || [ "$FAST" = none ]; then
    skip full "no search rate was measured"
  else
    # shellcheck disable=SC2046,SC2086
    stage full $(( NEED * 5 / 4 + 30 )) $(( NEED + FULL_RESERVE )) "$PY" $(search full "$FULL_STEPS" ${VARIANT[$FAST]})
  fi

  # -- the Lightning + NNI step against the same step in plain PyTorch, both on the device ---------------------
  # shellcheck disable=SC2086
  stage overhead "${LIMIT[overhead]}" "${MIN[overhead]}" "$PY" benchmarks/search_overhead.py $OVERHEAD_FLAGS \
    --device auto --no-append

  # -- retraining steps/s (bf16-mixed), then its Set12 score -------------------------------------------------
  GENO=""
  for g in full fast fp32 fast_compile; do [ -f "$WORK/search_$g/genotype.json" ] && { GENO="$WORK/search_$g/genotype.json"; break; }; done
  if [ -z "$GENO" ]; then
    skip retrain "no genotype: every search failed"
  else
    stage retrain "${LIMIT[retrain]}" "${MIN[retrain]}" "$PY" -m clearer_nni.retrain --genotype "$GENO" --data bsds500 \
      --steps "$RETRAIN_STEPS" --batch-size "$BATCH" --patch-size "$PATCH" --val-every "$VAL_EVERY" --val-patches "$VALP" \
      --precision bf16-mixed --checkpoint-every 0 --no-progress --out "$WORK/retrain" --overwrite
  fi
  if [ -f "$WORK/retrain/model.ckpt" ]; then
    # shellcheck disable=SC2086
    stage eval "${LIMIT[eval]}" "${MIN[eval]}" "$PY" -m clearer_nni.evaluate --model "$WORK/retrain/model.ckpt" \
      --data set12 --sigma 50 $EVAL_FLAGS --out "$WORK/eval_set12" --overwrite
  else
    skip eval "no retrained model"
  fi

  # -- search quality: one process per seed on the one device, then one summary -----------------------------
  # The one place that names benchmarks/quality.py's flags (its command line is being redesigned).
  # shellcheck disable=SC2086
  quality_args() { echo benchmarks/quality.py --out "$WORK/quality" --no-append --threads 1 $QUALITY_FLAGS; }
  QLIMIT=$(( DEADLINE - $(date +%s) - ${MIN[quality_summary]} )); [ "$QLIMIT" -gt 0 ] || QLIMIT=0
  SEEDS=$(seq -s, 0 $(( QUALITY_PROCS - 1 )))
  # shellcheck disable=SC2016,SC2046
  stage quality "$QLIMIT" "${MIN[quality]}" bash -c 'seeds=$1; shift; pids=()
    for s in ${seeds//,/ }; do "$@" --seeds "$s" & pids+=($!); done; rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done; exit $rc' \
    _ "$SEEDS" "$PY" $(quality_args)
  if ls "$WORK"/quality/seed*.csv > /dev/null 2>&1; then
    # shellcheck disable=SC2046
    stage quality_summary "${LIMIT[quality_summary]}" "${MIN[quality_summary]}" "$PY" $(quality_args) --seeds "$SEEDS" --summary-only
  else
    skip quality_summary "no quality rows written"
  fi
fi

# -- summary.md and one tar of the logs (at most 8 files come back from $OUT) -------------------------------
"$PY" benchmarks/_gpu.py summary "$WORK" > "$OUT/summary.md"
tar -czf "$OUT/logs.tar.gz" -C "$WORK" --exclude=base-env --exclude=site --exclude=home --exclude='*.pt' \
  --exclude='*.ckpt' .
cat "$OUT/summary.md"
echo "gpu.sh: done in $(( $(date +%s) - START )) s; $OUT: $(ls "$OUT" | tr '\n' ' ')"
[ "$KEEP_WORK" = 1 ] || rm -rf "$WORK"
[ "$CHECK" = ok ]
