#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv with everything the demo and the
# tests need. Idempotent; safe to run on a fresh machine (Debian/Ubuntu, Python >= 3.10).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${NAPARI_SAM2_VENV:-.venv}"
PY="${PYTHON:-python3}"
WITH_TESTS="${1:-}"
# Pinned versions known to work together: without them pip may backtrack through hundreds of
# releases (dask[distributed] and its dependencies) and give up with "resolution-too-deep".
CONSTRAINTS="$PWD/scripts/constraints.txt"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
pip install -q --upgrade pip setuptools wheel
# CPU build of PyTorch (a plain "torch" may pull a multi-GB CUDA build)
python -c "import torch" 2>/dev/null || pip install -q -c "$CONSTRAINTS" "torch==2.13.0"
if [ "$WITH_TESTS" = "--test" ]; then
  pip install -q -c "$CONSTRAINTS" -e ".[test]"
  # Meta's reference implementation, the parity-test oracle (test-only; never imported by the
  # plugin). --no-deps keeps pip from replacing the CPU torch; its torchvision import is
  # stubbed in tests/reference.py because PyPI's torchvision does not load beside this torch.
  if ! python -c "import sam2" 2>/dev/null; then
    pip install -q -c "$CONSTRAINTS" hydra-core iopath pillow tqdm
    SAM2_BUILD_CUDA=0 pip install -q --no-deps --no-build-isolation "sam2==1.1.0"
  fi
else
  pip install -q -c "$CONSTRAINTS" -e .
fi
