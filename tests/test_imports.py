"""Import isolation.

* ``import napari_sam2`` and its public API work without Qt, napari or magicgui being imported:
  only ``napari_sam2._napari`` (loaded through the npe2 manifest) may import them.
* The plugin never imports Meta's ``sam2`` package (it is a test oracle only): neither in the
  source (an AST scan of ``src/``) nor at run time (a subprocess exercises the public API and then
  inspects ``sys.modules``).

The run-time checks use fresh interpreters, because this test process has usually imported
``sam2`` (parity tests) and possibly Qt already.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import napari_sam2

SRC = Path(napari_sam2.__file__).resolve().parent
GUI_ROOTS = {"qtpy", "napari", "magicgui", "PyQt5", "PyQt6", "PySide2", "PySide6", "superqt"}
FORBIDDEN = GUI_ROOTS | {"sam2"}

# Prints the forbidden top-level packages found in sys.modules, as JSON, as the last line.
_REPORT = f"""
import json, sys
_roots = {{name.split(".")[0] for name in sys.modules}}
print(json.dumps(sorted(_roots & set({sorted(FORBIDDEN)!r}))))
"""


def _leaked(code: str, timeout: float = 240) -> list[str]:
    """Run ``code`` in a fresh interpreter; return the forbidden packages it left imported."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code) + _REPORT],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- run time


def test_bare_import_is_light():
    code = """
    import sys
    import napari_sam2
    assert napari_sam2.__version__
    assert "torch" not in sys.modules, "import napari_sam2 must not import torch eagerly"
    """
    assert _leaked(code) == []


def test_public_names_resolve_without_gui():
    code = """
    import napari_sam2
    from napari_sam2 import load_model, VideoSession, ImagePredictor
    for name in napari_sam2.__all__:
        assert getattr(napari_sam2, name) is not None, name
    assert callable(napari_sam2.load_model) and isinstance(napari_sam2.VideoSession, type)
    """
    assert _leaked(code) == []


def test_every_non_gui_module_imports_without_gui():
    """All modules outside ``_napari`` (found on disk, so new ones are covered too)."""
    modules = []
    for p in sorted(SRC.rglob("*.py")):
        parts = p.relative_to(SRC).with_suffix("").parts
        if "_napari" in parts or parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules.append(".".join(("napari_sam2", *parts)))
    assert "napari_sam2.weights.load" in modules and "napari_sam2.predictor" in modules
    code = f"""
    import importlib
    for name in {modules!r}:
        importlib.import_module(name)
    """
    assert _leaked(code) == []


def test_using_the_api_never_imports_sam2_or_gui(tmp_path: Path):
    code = f"""
    import numpy as np
    import torch
    import napari_sam2 as ns
    from napari_sam2.weights.load import save_checkpoint

    torch.manual_seed(0)
    model = ns.load_model("test_tiny_256", device="auto")
    path = save_checkpoint({str(tmp_path / "m.pt")!r}, model)
    model = ns.load_model(path, device="cpu")

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)
    pred = ns.ImagePredictor(model)
    pred.set_image(image)
    masks, scores, logits = pred.predict(points=[[30, 40]], labels=[1], box=(10, 10, 50, 70))
    assert masks.shape == (3, 64, 80)

    movie = rng.integers(0, 4000, (4, 48, 56), dtype=np.uint16)
    session = ns.VideoSession(model, movie, settings=ns.MemorySettings())
    session.add_points(1, 1, [[20, 25]], [1])
    results = list(session.propagate(direction="both"))
    assert sorted(r.frame for r in results) == [0, 1, 2, 3]
    assert isinstance(results[0], ns.FrameResult)
    assert session.labels().shape == (4, 48, 56)
    """
    assert _leaked(code) == []


# --------------------------------------------------------------------------- source scan


def _callee(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else None


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in ``path``, including imports inside
    functions and ``importlib.import_module("...")`` / ``__import__("...")`` with a literal."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and _callee(node.func) in {"import_module", "__import__"}
        ):
            found.append((node.lineno, node.args[0].value.split(".")[0]))
    return sorted(found)


def _source_files() -> list[Path]:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20, f"expected the package sources under {SRC}"
    return files


def test_source_never_imports_sam2():
    offenders = [
        f"{p.relative_to(SRC.parent)}:{line}"
        for p in _source_files()
        for line, root in _imports(p)
        if root == "sam2"
    ]
    assert offenders == [], "the plugin must not import Meta's sam2 package: " + ", ".join(
        offenders
    )


def test_only_the_napari_subpackage_imports_gui_libraries():
    offenders = [
        f"{p.relative_to(SRC.parent)}:{line} imports {root}"
        for p in _source_files()
        if "_napari" not in p.relative_to(SRC).parts
        for line, root in _imports(p)
        if root in GUI_ROOTS
    ]
    assert offenders == []


def test_scanner_sees_imports(tmp_path: Path):
    """The AST scan itself finds every form of import it is meant to catch."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os\n"
        "import sam2.modeling\n"
        "from sam2 import build_sam\n"
        "from . import sam2\n"  # relative: our own module, allowed
        "def f():\n"
        "    import qtpy\n"
        "    importlib.import_module('sam2.utils')\n"
        "    __import__('napari')\n"
    )
    assert _imports(probe) == [
        (1, "os"),
        (2, "sam2"),
        (3, "sam2"),
        (6, "qtpy"),
        (7, "sam2"),
        (8, "napari"),
    ]


def test_unknown_attribute_and_dir():
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        napari_sam2.nope  # noqa: B018
    assert dir(napari_sam2) == sorted(napari_sam2.__all__)
