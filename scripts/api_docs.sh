#!/usr/bin/env bash
# Build the API reference from the docstrings with pdoc into docs/api/ (git-ignored; open
# docs/api/index.html). Fails on any pdoc warning (a module that does not import, a docstring
# pdoc cannot read). Run from the project's venv (it needs pdoc, from the [test] extra).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-docs/api}"
rm -rf "$OUT"
python - "$OUT" <<'PY'
import sys
import warnings

# pdoc reports problems as warnings; make each one an error so the build fails on it.
warnings.filterwarnings("error", module=r"pdoc(\..*)?$")
from pdoc.__main__ import cli

out = sys.argv[1]
cli(
    [
        "--docformat", "google",
        "--no-show-source",
        "-o", out,
        "napari_sam2",
        "napari_sam2.pipeline",
        "napari_sam2.predictor",
        "napari_sam2.video",
        "napari_sam2.io",
        "napari_sam2.weights",
        "napari_sam2.model",
        "napari_sam2.train",
        "napari_sam2.cli",
        r"!napari_sam2\._",
        r"!napari_sam2\..*\._",
    ]
)
PY
test -s "$OUT/index.html" && test -s "$OUT/napari_sam2/video/session.html"
echo "API reference: $OUT/index.html ($(find "$OUT" -name '*.html' | wc -l) pages)"
