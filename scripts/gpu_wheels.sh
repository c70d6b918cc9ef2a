#!/usr/bin/env bash
# Prepare the wheel folder for a CUDA machine that has torch / transformers / numpy / pandas / scipy /
# scikit-learn / matplotlib but not optuna, mlflow, hydra-core, and reaches no package registry: the packages of
# ../shared/gpu/requirements-cuda-image.txt plus the project's gpu extra (scripts/requirements-gpu-extra.txt:
# accelerate for bench-gpu's Trainer reference), at the LOCK's versions (lock/gpu.txt, read for CPython
# PYTHON_VERSION by `scripts/gpu_carry.py requirements`): the device runs what `make install` installs, torch
# and transformers excepted (the image's own). A package whose locked version has no wheel for that Python
# keeps the image list's pin, and the script says so.
#
#   scripts/gpu_wheels.sh [DIR] [PYTHON_VERSION]        # default: .whl 3.12 (the H200 image: CPython 3.12)
#
# Run it on a machine WITH registry access; DIR (git-ignored) then travels with the working tree
# (`carry: [".whl", ...]`) and is installed there without a registry, see docs/gpu.md:
#   pip install --no-index --no-deps --target .site .whl/*.whl ; export PYTHONPATH=$PWD/.site:$PWD/src
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.whl}
PYV=${2:-3.12}
REQ=../shared/gpu/requirements-cuda-image.txt
[ -f "$REQ" ] || REQ=scripts/requirements-cuda-image.txt
EXTRA=scripts/requirements-gpu-extra.txt
PIP=${PIP:-.venv/bin/pip}
PYTHON=${PYTHON:-.venv/bin/python}
LOCK=${LOCK:-lock/gpu.txt}
mkdir -p "$DIR"
rm -f "$DIR"/*.whl  # a wheel of a version no longer locked would travel (and install) beside the new one
"$PYTHON" scripts/gpu_carry.py requirements "$REQ" "$EXTRA" "$LOCK" "$PYV" > "$DIR/all.txt"
# The pure-Python wheel that the registry does not have as a wheel: built locally (no compiled code).
grep -v '^antlr4-python3-runtime' "$DIR/all.txt" > "$DIR/requirements.txt"
grep '^antlr4-python3-runtime' "$DIR/all.txt" > "$DIR/antlr.txt"
fetch() {
  "$PIP" download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_24_x86_64 -d "$DIR" "$@"
}
if ! fetch -r "$DIR/requirements.txt" 2>/dev/null; then  # one by one: which locked version has no such wheel
  while read -r req; do
    fetch "$req" 2>/dev/null && continue
    pinned=$(grep -iE "^${req%%==*}==" "$REQ" || true)
    [ -n "$pinned" ] && fetch "$pinned" || { echo "no CPython $PYV wheel of $req (nor of the image's pin)" >&2; exit 1; }
    echo "$req: no CPython $PYV wheel; took the image list's $pinned" >&2
  done < "$DIR/requirements.txt"
fi
"$PIP" wheel -q --no-deps -w "$DIR" -r "$DIR/antlr.txt"
rm -f "$DIR/all.txt" "$DIR/requirements.txt" "$DIR/antlr.txt"
n=$(ls "$DIR"/*.whl | wc -l)
echo "$DIR: $n wheels, $(du -sh "$DIR" | cut -f1) (for CPython $PYV, manylinux x86_64)"
