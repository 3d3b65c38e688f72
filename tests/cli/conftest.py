"""Fixtures for the command-line tests: run the installed ``napari-sam2`` console script."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

_SCRIPT = Path(sys.executable).with_name("napari-sam2")


def cli_command() -> list[str]:
    """The real console script from the venv's bin; ``python -m napari_sam2.cli`` only when the
    package was installed without its entry points."""
    if _SCRIPT.exists():
        return [str(_SCRIPT)]
    return [sys.executable, "-m", "napari_sam2.cli"]


def cli_env(tmp_cache: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    if tmp_cache is not None:
        env["NAPARI_SAM2_CACHE"] = str(tmp_cache)
    return env


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """An empty checkpoint cache, so the tests never look at (or fill) the user's cache."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def run_cli(model_cache):
    """run_cli(*args, timeout=...) -> CompletedProcess (text stdout/stderr)."""

    def run(*args: str, timeout: float = 180, cwd: Path | None = None, cache: Path | None = None):
        return subprocess.run(
            [*cli_command(), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=cli_env(cache or model_cache),
        )

    return run


def write_blob_movie(path: Path, moving: tuple[int, int], still: tuple[int, int]) -> Path:
    """(T=4, H=64, W=96) uint16 TYX TIFF with a bright blob at ``moving`` (y, x) drifting 1 px
    per frame in x and a dimmer one at ``still``, and beside it ``clicks.csv``: a frame-0 click
    on each blob (objects 1 and 2)."""
    import numpy as np
    import tifffile

    yy, xx = np.mgrid[:64, :96]
    rng = np.random.default_rng(0)
    movie = rng.normal(300, 30, (4, 64, 96))
    for k in range(4):
        movie[k][(yy - moving[0]) ** 2 + (xx - moving[1] - k) ** 2 < 49] += 2000
        movie[k][(yy - still[0]) ** 2 + (xx - still[1]) ** 2 < 36] += 1500
    tifffile.imwrite(
        path, np.clip(movie, 0, 65535).astype(np.uint16), imagej=True, metadata={"axes": "TYX"}
    )
    rows = [f"0,{y},{x},{i},1" for i, (y, x) in enumerate((moving, still), start=1)]
    path.with_name("clicks.csv").write_text("frame,y,x,obj_id,positive\n" + "\n".join(rows) + "\n")
    return path


def error_lines(stderr: str) -> list[str]:
    """The non-progress lines of stderr (tqdm redraws with carriage returns)."""
    lines = []
    for line in stderr.replace("\r", "\n").splitlines():
        if line.strip() and "frame/s]" not in line and "step/s]" not in line:
            lines.append(line)
    return lines


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory, run_cli) -> Path:
    """``napari-sam2 demo`` run once (4 frames of 96 x 96 px, random-weight tiny model)."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    proc = run_cli("demo", "--out", out, "--model", "test_tiny_256", "--frames", 4, "--size", 96)
    assert proc.returncode == 0, proc.stderr
    (out / "stdout.txt").write_text(proc.stdout)
    return out


def interrupt_segment(args: list[str], sig: int = signal.SIGINT, after: int = 1) -> tuple[int, str]:
    """Run ``napari-sam2 segment ARGS`` in a subprocess, send ``sig`` once its progress bar shows
    ``after`` finished frames, and return (exit code, stderr)."""
    proc = subprocess.Popen(
        [*cli_command(), "segment", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    chunks: list[bytes] = []
    reader = threading.Thread(
        target=lambda: chunks.extend(iter(lambda: proc.stderr.read1(256), b"")), daemon=True
    )
    reader.start()
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and proc.poll() is None:
        done = re.findall(rb"propagating:[^|]*\|[^|]*\|\s*(\d+)/", b"".join(chunks))
        if done and int(done[-1]) >= after:
            break
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.wait(timeout=150)
    reader.join(timeout=10)
    return proc.returncode, b"".join(chunks).decode(errors="replace")
