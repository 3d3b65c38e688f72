#!/usr/bin/env bash
# The GPU checks, as one short run for a lent GPU machine (the `device` tool; ~6 minutes on an
# H200 is the plan, so a 540 s timeout leaves room for one rerun of 15 minutes of device time).
#
# That machine has PyTorch, Triton, numpy, scipy, scikit-image, tifffile, tqdm and pytest, but
# not platformdirs: carry its wheel. Once, here, in the repository root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl platformdirs
# then: run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=540).
#
# Checks: tests/gpu (fp32 on the GPU vs the CPU, bf16 autocast, flash / memory-efficient
# attention at official sizes, torch.compile, bounded GPU memory) and the CUDA loading test; then
# timings of the micro model (10 and 200 objects) and of SAM 2.1 tiny's architecture (random
# weights, 1024-px input) in fp32, bf16 and compiled. Everything lands in $OUT (or /tmp/gpu_check).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
{
  nvidia-smi -L
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
} 2>&1 | tee "$OUT/gpu.txt"

timeout 240 python3 -m pytest -q -p no:cacheprovider tests/gpu \
  "tests/weights/test_load.py::test_load_on_cuda" 2>&1 | tee "$OUT/tests.txt"

bench() {  # name, then bench_many_cells arguments
  local name=$1
  shift
  echo "## $name" | tee -a "$OUT/bench.md"
  timeout 120 python3 benchmarks/bench_many_cells.py --threads 8 "$@" 2>&1 | tee -a "$OUT/bench.md"
}
bench "micro, 10 objects, 512 px, fp32" --objects 10 --size 512 --frames 60
bench "micro, 10 objects, 512 px, compiled" --objects 10 --size 512 --frames 60 --compile
bench "micro, 200 objects, 2048 px, fp32" --objects 200 --size 2048 --frames 20
tiny=(--model random:sam2.1_hiera_tiny --device cuda --objects 10 --size 1024 --frames 30)
bench "SAM 2.1 tiny architecture, 10 objects, fp32" "${tiny[@]}"
bench "SAM 2.1 tiny architecture, 10 objects, bf16" "${tiny[@]}" --precision bf16
bench "SAM 2.1 tiny architecture, 10 objects, bf16, compiled" "${tiny[@]}" --precision bf16 \
  --compile
