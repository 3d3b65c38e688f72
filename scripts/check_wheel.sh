#!/usr/bin/env bash
# Build the wheel, check that it carries the bundled model and the napari manifest, install it
# into a clean virtual environment (no napari, no Qt) and run `napari-sam2 demo` from it.
# Run from the project's venv (it needs `build`); the clean venv lives in a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
# The clean venv must see only the wheel, not the source tree (nor its src/*.egg-info).
unset PYTHONPATH
PY="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# setuptools leaves src/*.egg-info and build/ behind; remove them unless they were there before
# (a stray egg-info in src/ makes napari_sam2 look installed twice when src/ is on sys.path).
LEFTOVERS=()
for d in src/napari_sam2.egg-info build; do [ -e "$d" ] || LEFTOVERS+=("$d"); done
python -m build --wheel --no-isolation --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log" >&2; rm -rf "${LEFTOVERS[@]}"; exit 1; }
rm -rf "${LEFTOVERS[@]}"
WHEEL="$(ls "$WORK"/dist/napari_sam2-*.whl)"
python - "$WHEEL" <<'EOF'
import sys
import zipfile

names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = ["napari_sam2/weights/micro.pt", "napari_sam2/napari.yaml"]
missing = [n for n in need if n not in names]
if not any(n.endswith("LICENSE") for n in names):
    missing.append("LICENSE")
if missing:
    sys.exit(f"the wheel lacks {missing}; check [tool.setuptools.package-data] in pyproject.toml")
print(f"wheel ok: {sys.argv[1].rsplit('/', 1)[-1]} ({len(names)} files)")
EOF

"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
# CPU build of PyTorch first (a plain "torch" may pull a multi-GB CUDA build).
pip_install() {
  "$VPY" -m pip install -q --disable-pip-version-check -c "$PWD/scripts/constraints.txt" "$@" >>"$WORK/pip.log" 2>&1 \
    || { tail -40 "$WORK/pip.log" >&2; exit 1; }
}
pip_install "torch==2.13.0"
pip_install "$WHEEL"
"$VPY" - <<'EOF'
import importlib.util
import sys

gui = [m for m in ("napari", "qtpy", "magicgui", "PyQt6", "PyQt5") if importlib.util.find_spec(m)]
if gui:
    sys.exit(f"pip install napari-sam2 pulled in GUI packages: {gui}")
EOF
"$WORK/venv/bin/napari-sam2" --help >/dev/null
"$VPY" -c "import napari_sam2; napari_sam2.MemorySettings(); print('import napari_sam2: ok')"
(cd "$WORK" && OMP_NUM_THREADS=2 "$WORK/venv/bin/napari-sam2" demo --out demo --frames 4 \
  --size 128 -q)
test -s "$WORK/demo/labels.tif"
echo "wheel installed into a clean venv without napari; napari-sam2 demo wrote labels.tif"
