#!/usr/bin/env bash
# The main job on the bundled defaults, offline: make a sample fluorescence time-lapse, click
# each cell on the first frame, propagate through the movie and write demo_out/labels.tif
# (+ movie.tif, preview.png, a summary). Installs into .venv first.
# Model: the bundled micro SAM 2 when this installation ships it; otherwise Meta's
# sam2.1_hiera_tiny (downloaded once into the user cache - needs the network that one time).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# shellcheck disable=SC1091
. "${NAPARI_SAM2_VENV:-.venv}/bin/activate"
MODEL=micro
if [ ! -f src/napari_sam2/weights/micro.pt ]; then
  echo "note: the bundled micro model is not in this build yet; using sam2.1_hiera_tiny" >&2
  MODEL=sam2.1_hiera_tiny
fi
napari-sam2 demo --model "$MODEL" --out "${1:-demo_out}"
