#!/usr/bin/env bash
# Prepare the wheel folder for a CUDA machine that has torch / transformers / numpy / pandas / scipy /
# scikit-learn / matplotlib but not optuna, mlflow, hydra-core, and reaches no package registry: the wheels of
# ../shared/gpu/requirements-cuda-image.txt plus the project's gpu extra (scripts/requirements-gpu-extra.txt:
# accelerate for bench-gpu's Trainer reference).
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
mkdir -p "$DIR"
# The pure-Python wheel that the registry does not have as a wheel: built locally (no compiled code).
{ cat "$REQ"; echo; cat "$EXTRA"; } | grep -v '^antlr4-python3-runtime' | grep -v '^#' | grep -v '^$' > "$DIR/requirements.txt"
"$PIP" download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_24_x86_64 -d "$DIR" -r "$DIR/requirements.txt"
grep '^antlr4-python3-runtime' "$REQ" > "$DIR/antlr.txt"
"$PIP" wheel -q --no-deps -w "$DIR" -r "$DIR/antlr.txt"
rm -f "$DIR/requirements.txt" "$DIR/antlr.txt"
n=$(ls "$DIR"/*.whl | wc -l)
echo "$DIR: $n wheels, $(du -sh "$DIR" | cut -f1) (for CPython $PYV, manylinux x86_64)"
