#!/usr/bin/env bash
# GPU benchmark: search and retrain steps/s at the paper's setting, the extrapolated 10,000-step search
# time, and a short quality check. Everything goes under $OUT (or the first argument). Under 8 minutes.
#
#   bash benchmarks/gpu.sh [OUT]
#
# The GPU machine may have no package index. Before going there, put the project's wheels beside the
# checkout (pure-Python ones are small; a CUDA torch is ~1 GB, so use the machine's torch if it has one):
#   pip download -d wheels nni==3.0 pytorch-lightning==2.6.6 ...   (see requirements.txt)
# The script installs from ./wheels with --no-index when something is missing.
# Data: $CLEARER_DATA_ROOT (or ../shared/data) with BSDS500 and Set12; otherwise the embedded images.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-runs/gpu}}"
mkdir -p "$OUT"
LOG="$OUT/gpu.log"
exec > >(tee -a "$LOG") 2>&1
START=$(date +%s)
left() { echo $(( 450 - ($(date +%s) - START) )); }   # seconds left of a 7.5-minute budget

# -- environment ------------------------------------------------------------------------------------
PY="${PYTHON:-}"
for cand in "$PY" .venv/bin/python python3 python; do
  [ -n "$cand" ] && command -v "$cand" >/dev/null && "$cand" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null \
    && { PY="$cand"; break; }
done
if [ -z "$PY" ] || ! "$PY" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  echo "no Python with a CUDA torch found"; PY=python3
  [ -d wheels ] && "$PY" -m pip install -q --no-index --find-links wheels torch
fi
if ! "$PY" -c "import nni, pytorch_lightning, skimage, yaml" 2>/dev/null; then
  if [ -d wheels ]; then
    "$PY" -m pip install -q --no-index --find-links wheels -r <(grep -v '^torch' requirements.txt)
  else
    echo "missing packages and no ./wheels to install from"; exit 1
  fi
fi
"$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . 2>/dev/null || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" - <<'EOF' | tee "$OUT/device.txt"
import torch, nni, pytorch_lightning as pl
print(f"card: {torch.cuda.get_device_name(0)}; torch {torch.__version__}, CUDA {torch.version.cuda}, nni {nni.__version__}, lightning {pl.__version__}")
EOF

DATA=bsds500
"$PY" -c "from clearer_nni.data import load_dataset; load_dataset('bsds500', 'val')" 2>/dev/null || DATA=skimage
echo "search data: $DATA"

# -- search steps/s at the paper's setting (default space, batch 32, 64x64) ---------------------------
# Rate from search_log.csv between two logged steps, so start-up and compilation are excluded.
search() {  # name, steps, flags...
  local name=$1 steps=$2; shift 2
  timeout $(( $(left) > 30 ? $(left) - 30 : 1 )) "$PY" -m clearer_nni.search --space denoise --data "$DATA" \
    --steps "$steps" --warmup-steps 10 --log-every 50 --val-patches 32 --no-progress --no-supernet \
    --out "$OUT/search_$name" --overwrite "$@" > "$OUT/search_$name.txt" 2>&1
  echo "search $name: exit $?"
}
search fp32 150
search fast 150 --channels-last --precision bf16-mixed
search fast_compile 200 --channels-last --precision bf16-mixed --compile

# -- retrain steps/s (derived network of the fast search) -------------------------------------------
GENO="$OUT/search_fast/genotype.json"
[ -f "$GENO" ] || GENO="$OUT/search_fp32/genotype.json"
if [ -f "$GENO" ] && [ "$(left)" -gt 90 ]; then
  timeout $(( $(left) - 60 )) "$PY" -m clearer_nni.retrain --genotype "$GENO" --data "$DATA" --steps 400 \
    --val-every 100 --precision bf16-mixed --no-progress --out "$OUT/retrain" --overwrite > "$OUT/retrain.txt" 2>&1
  echo "retrain: exit $?"
fi

# -- short quality check: the retrained network on Set12 (standard protocol) ------------------------
if [ -f "$OUT/retrain/model.ckpt" ] && [ "$(left)" -gt 30 ]; then
  SET=set12; "$PY" -c "from clearer_nni.data import load_dataset; load_dataset('set12', 'test')" 2>/dev/null || SET=skimage
  timeout $(( $(left) - 10 )) "$PY" -m clearer_nni.evaluate --model "$OUT/retrain/model.ckpt" --data "$SET" \
    --sigma 50 --no-progress --out "$OUT/eval" --overwrite > "$OUT/eval.txt" 2>&1
  echo "evaluate ($SET): exit $?"
fi

# -- summary ----------------------------------------------------------------------------------------
"$PY" - "$OUT" <<'EOF' | tee "$OUT/summary.md"
import csv, sys
from pathlib import Path
out = Path(sys.argv[1])
print((out / "device.txt").read_text().strip())
def rate(path):
    rows = [r for r in csv.DictReader(open(path))] if path.exists() else []
    if len(rows) < 3:
        return None
    a, b = rows[1], rows[-1]  # from the second logged row on: start-up (and most compiling) excluded
    return (int(b["step"]) - int(a["step"])) / (float(b["seconds"]) - float(a["seconds"]))
print("| run | steps/s | 10,000-step search (min) |\n|---|---|---|")
for name in ("fp32", "fast", "fast_compile"):
    r = rate(out / f"search_{name}" / "search_log.csv")
    print(f"| search {name} | {r:.2f} | {10000 / r / 60:.1f} |" if r else f"| search {name} | failed or too short | - |")
r = rate(out / "retrain" / "metrics.csv")
print(f"| retrain (bf16-mixed) | {r:.2f} | - |" if r else "| retrain | failed or skipped | - |")
for f in (out / "eval").glob("summary.csv"):
    print("\nquality check (400 retrain steps, not the paper's budget):\n" + f.read_text())
EOF
echo "done in $(( $(date +%s) - START )) s; results under $OUT"
