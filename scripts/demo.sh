#!/usr/bin/env bash
# The main job on the bundled defaults, offline: make a sample fluorescence time-lapse, click
# each cell on the first frame, propagate through the movie with the bundled micro SAM 2 and
# write demo_out/labels.tif (+ movie.tif, preview.png, a summary). Installs into .venv first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# shellcheck disable=SC1091
. "${NAPARI_SAM2_VENV:-.venv}/bin/activate"
napari-sam2 demo --out "${1:-demo_out}"
