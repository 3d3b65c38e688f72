"""The library and the command line work where napari and Qt are not installed.

``pip install napari-sam2`` installs no GUI packages (they are in the ``[napari]`` and ``[qt]``
extras). This test simulates such an environment in a fresh interpreter: a meta-path hook makes
every import of napari, Qt, magicgui and their helpers fail exactly as for a missing package;
then ``import napari_sam2``, the public API, every command's ``--help`` and a small demo run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BLOCKED = (
    "napari",
    "npe2",
    "magicgui",
    "qtpy",
    "superqt",
    "vispy",
    "PyQt5",
    "PyQt6",
    "PySide2",
    "PySide6",
)

_BLOCKER = f"""
import importlib.abc
import sys

class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
for _name in list(sys.modules):
    assert _name.split(".")[0] not in {BLOCKED!r}, _name
"""


def _run(code: str, tmp_path: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NAPARI_SAM2_CACHE": str(tmp_path / "cache"),
    }
    return subprocess.run(
        [sys.executable, "-c", _BLOCKER + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=tmp_path,
    )


def test_the_blocker_really_blocks(tmp_path: Path):
    proc = _run("import napari\n", tmp_path)
    assert proc.returncode != 0
    assert "No module named 'napari'" in proc.stderr


def test_import_and_public_api_without_napari(tmp_path: Path):
    proc = _run(
        """
        import napari_sam2
        for name in napari_sam2.__all__:
            assert getattr(napari_sam2, name) is not None, name
        from napari_sam2 import MemorySettings, load_model, segment_movie, VideoSession
        print("API OK", len(napari_sam2.__all__))
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "API OK" in proc.stdout


@pytest.mark.parametrize("command", ["", "demo", "segment", "models", "train", "finetune"])
def test_cli_help_without_napari(tmp_path: Path, command: str):
    args = [command, "--help"] if command else ["--help"]
    proc = _run(
        f"""
        from napari_sam2.cli import main
        try:
            main({args!r})
        except SystemExit as exc:
            assert exc.code in (0, None), exc.code
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "usage: napari-sam2" in proc.stdout


def test_demo_runs_without_napari(tmp_path: Path):
    proc = _run(
        """
        from napari_sam2.cli import main
        raise SystemExit(main(["demo", "--out", "demo", "--frames", "3", "--size", "96", "-q"]))
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("movie.tif", "labels.tif", "prompts.csv"):
        assert (tmp_path / "demo" / name).is_file(), name
