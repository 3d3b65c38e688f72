#!/usr/bin/env bash
# Train the generalist bundled model on a lent GPU machine (the `device` tool) in one short run,
# and bring its weights back.
#
# Once, here, in the repository root (the machine lacks platformdirs; see scripts/gpu_check.sh):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl platformdirs
# To continue from earlier GPU weights, copy them to runs/gpu_init.pt (git-ignored) and carry it.
# Then: run(command="bash scripts/gpu_train.sh", carry=[".whl", "runs/gpu_init.pt"],
#           timeout_s=570)
# It trains for MINUTES (default 7.5) with clips rendered by 14 CPU processes, then copies
# model.pt (the weights, ~8 MB), metrics.jsonl and the log to $OUT. Evaluate the weights here on
# validation seeds (benchmarks/eval_looks.py --split validation --checkpoint ...) before
# shipping them.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_train}
MINUTES=${MINUTES:-7.5}
DEVICE=${DEVICE:-cuda}    # DEVICE=cpu WORKERS=1 MINUTES=0.5: a smoke run of this script on a CPU
WORKERS=${WORKERS:-14}
RUN=/tmp/gpu_run
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
INIT=src/napari_sam2/weights/micro.pt
[ -f runs/gpu_init.pt ] && INIT=runs/gpu_init.pt
nvidia-smi -L | tee "$OUT/train.log"
# the schedule is sized for a few thousand GPU steps; --minutes stops it early and saves
python3 scripts/train_micro.py --variant generalist --init "$INIT" \
  --families nuclei cytoplasm cytoplasm phase bacteria bacteria --holdout brightfield \
  --kinds-fraction 0.35 --kinds nuclei nuclei phase zstack --seed 17 --lr 1e-4 --steps 3000 \
  --device "$DEVICE" $([ "$DEVICE" = cuda ] && echo --bf16) --clip-workers "$WORKERS" --threads 2 --minutes "$MINUTES" --out "$RUN" \
  2>&1 | tee -a "$OUT/train.log"
cp "$RUN/model.pt" "$RUN/metrics.jsonl" "$OUT/" 2>/dev/null
ls -la "$OUT"
