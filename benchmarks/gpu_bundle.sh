#!/usr/bin/env bash
# Build .gpu/: what the GPU machine lacks for benchmarks/gpu.sh, and nothing it has (docs/GPU.md).
#
#   bash benchmarks/gpu_bundle.sh [--data-root DIR] [--out DIR]
#
# The machine (benchmarks/gpu_machine_packages.txt) has Python 3.12, torch 2.11, Lightning, scikit-image,
# pandas... but not nni, and only 64 MiB of working tree travels with a run. Contents:
#   wheels/  nni 3.0 without nni_node (the web UI and a node binary: 175 MB unpacked, unused by a one-shot
#            search), repacked pure-Python (~1 MB); the nni dependencies the machine lacks that importing
#            nni.nas one-shot code needs, as pure-Python (py3-none-any) wheels for Python 3.12, pinned to the
#            versions installed in .venv; requirements.txt naming them all.
#   data/    BSDS500 train (200) + val (100): the search's weights and alpha (SPEC); BSD400 (400) and BSD68
#            (68): the quality benchmark's training and test sets; Set12 (12): the retraining's score.
#            Whole folders, MANIFEST.txt kept; BSDS500 test (200, unused here) is left out.
# The project itself is not copied: its checkout travels with every run.
# Needs .venv (make setup: its nni gives the dependency list) and PyPI; prints the sizes at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_ROOT="${CLEARER_DATA_ROOT:-../shared/data}"
OUT=.gpu
while [ $# -gt 0 ]; do
  case "$1" in
    --data-root) DATA_ROOT="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "error: unknown argument $1 (usage: gpu_bundle.sh [--data-root DIR] [--out DIR])" >&2; exit 2 ;;
  esac
done
PY=.venv/bin/python
[ -x "$PY" ] || { echo "error: $PY not found: run make setup first" >&2; exit 2; }
for d in BSDS500/train BSDS500/val BSD400 BSD68 Set12; do
  [ -d "$DATA_ROOT/$d" ] || { echo "error: $DATA_ROOT/$d not found (pass --data-root)" >&2; exit 2; }
done
# nni's dependencies that the machine lacks but that importing nni.nas one-shot code never loads
# (checked in the dry run's mimic, which lacks them too): astor (graph code generation), prettytable and
# wcwidth (nnictl tables), PythonWebHDFS (HDFS storage), responses (a test helper).
UNUSED="astor prettytable wcwidth pythonwebhdfs responses"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/wheels" "$TMP/data/BSDS500"
"$PY" benchmarks/_gpu.py missing > "$TMP/missing.txt"
PINS=$(grep -v -E "^($(echo "$UNUSED" | tr ' ' '|'))==" "$TMP/missing.txt")
NNI=$(echo "$PINS" | grep '^nni==')
DEPS=$(echo "$PINS" | grep -v '^nni==')
pip_download() { "$PY" -m pip download -q --no-deps --only-binary=:all: "$@" 2>&1 | { grep -v "is ignored" || true; }; }
pip_download -d "$TMP/full" "$NNI"
"$PY" benchmarks/_gpu.py strip-nni "$TMP"/full/nni-*.whl "$TMP/wheels" > /dev/null
# Pure-Python wheels only: they install on the machine's 3.12 and on the dry run's Python alike.
# shellcheck disable=SC2086
pip_download --python-version 3.12 --implementation py --abi none --platform any -d "$TMP/wheels" $DEPS
echo "$PINS" > "$TMP/wheels/requirements.txt"
cp -r "$DATA_ROOT/BSDS500/train" "$DATA_ROOT/BSDS500/val" "$DATA_ROOT/BSDS500/MANIFEST.txt" "$TMP/data/BSDS500/"
cp -r "$DATA_ROOT/BSD400" "$DATA_ROOT/BSD68" "$DATA_ROOT/Set12" "$TMP/data/"
rm -rf "$TMP/full" "$TMP/missing.txt"
chmod -R u+w,go+rX "$TMP"   # the shared data is read-only: the next build must be able to remove it
[ -d "$OUT" ] && chmod -R u+w "$OUT" && rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
mv "$TMP" "$OUT"   # built aside, then moved: never a half-built bundle under its name

mib() { du -sk "$@" | awk '{s += $1} END {printf "%.1f", s / 1024}'; }
CHECKOUT=$(git ls-files -z | xargs -0 du -ck | tail -1 | awk '{printf "%.1f", $1 / 1024}')
echo "bundle $OUT: $(mib "$OUT") MiB (wheels $(mib "$OUT/wheels") MiB: $(ls "$OUT/wheels" | grep -c whl) wheels;" \
     "data $(mib "$OUT/data") MiB)"
echo "checkout (git ls-files) $CHECKOUT MiB; together $(awk "BEGIN {printf \"%.1f\", $CHECKOUT + $(mib "$OUT")}") MiB" \
     "of the 64 MiB that travel"
