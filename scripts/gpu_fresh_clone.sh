#!/usr/bin/env bash
# `make bench-gpu` from a fresh clone on the GPU machine, which reaches no package registry: clone a bundle of
# the repository (git bundle create data/gpu/repo.bundle HEAD main, carried with data/gpu), put the carry beside it,
# install its wheels and run the command docs/gpu.md gives ("A CUDA machine without a registry").
#
#   bash scripts/gpu_fresh_clone.sh [bundle]     # ARGS: bench-gpu's arguments (default: ModernBERT-base,
#                                                # Trainer bf16 against the packed compiled 64K-token path)
set -euo pipefail
BUNDLE=$(realpath "${1:-data/gpu/repo.bundle}")
CARRY=$(realpath data/gpu/carry.tar.xz)
ARGS=${ARGS:---skip-real --refs bf16 --models ModernBERT-base --variants packed64k_compiled}
D=$(mktemp -d)/sweep
git clone -q -b "${BRANCH:-main}" "$BUNDLE" "$D"
cd "$D"
echo "fresh clone at $(git log --oneline -1)"
mkdir -p data/gpu && cp "$CARRY" data/gpu/ && tar -C data/gpu -xJf data/gpu/carry.tar.xz
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site data/gpu/wheels/*.whl
export PYTHONPATH=/tmp/site:$PWD/src
make bench-gpu NO_VENV=1 PY=python3 ARGS="--minilm $PWD/data/gpu/minilm ${OUT:+--json $OUT/bench.json} $ARGS"
