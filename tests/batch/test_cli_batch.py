"""``napari-sam2 batch`` end to end in subprocesses (a local cluster of 1 worker, the bundled
micro model): Ctrl-C keeps the finished movies and leaves nothing half-written, the rerun
finishes the rest; plus the usage errors, in process."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
from batch_helpers import blob_movie, clicks_csv, hidden_entries, write_movie

from napari_sam2 import cli, segment_movie

_CMD = [sys.executable, "-m", "napari_sam2.cli", "batch"]
#: frames of each movie: enough for a movie to be running when the signal comes (one worker
#: takes the movies one by one), few so that the three commands stay short
_FRAMES = 6


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _statuses(out) -> dict[str, str]:
    path = out / "summary.csv"
    if not path.exists():
        return {}
    with open(path, newline="") as fh:
        return {os.path.basename(r["movie"]): r["status"] for r in csv.DictReader(fh)}


def _interrupted_run(tmp_path, batch, sig: int, whole_group: bool, extra: tuple = ()):
    """Start a batch of 4 movies + 1 corrupt one (options ``extra``), send ``sig`` once a movie
    is done; return the command's arguments, the movie folder, and the finished process's
    (returncode, stderr)."""
    data = tmp_path / "movies"
    data.mkdir()
    for i in range(4):
        write_movie(data / f"m{i}.tif", blob_movie(_FRAMES, i))
        clicks_csv(data / f"m{i}_clicks.csv", i)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        f"movie,prompts\nmovies/m*.tif,movies/{{stem}}_clicks.csv\n{batch['manifest'].parent}/"
        "corrupt.tif,movies/m0_clicks.csv\n"
    )
    out = tmp_path / "out"
    args = [str(manifest), "--out", str(out), "--workers", "1", "--model", "micro", *extra]
    proc = subprocess.Popen(
        _CMD + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while "done" not in _statuses(out).values() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    if whole_group:  # Ctrl-C in a terminal reaches every process of the foreground group
        os.killpg(proc.pid, sig)
    else:  # a scheduler's SIGTERM / a closed terminal's SIGHUP to the command
        os.kill(proc.pid, sig)
    _, stderr = proc.communicate(timeout=120)
    assert "interrupted:" in stderr and "finished and kept" in stderr
    first = _statuses(out)
    kept = sorted(n for n, s in first.items() if s == "done")
    assert kept and "cancelled" in first.values(), first
    assert hidden_entries(out) == []
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [k[:-4] for k in kept]
    return args, data, out, proc.returncode, stderr


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_cli_sigterm_sighup_keep_finished(tmp_path, batch, micro, sig):
    *_, code, stderr = _interrupted_run(tmp_path, batch, sig, whole_group=False)
    assert code == 128 + sig, stderr


@pytest.mark.slow
def test_cli_ctrl_c_then_rerun(tmp_path, batch, micro):
    """Ctrl-C keeps the finished movies; the same command again (quiet) skips them and says
    so, finishes the rest and reports the corrupt movie as failed."""
    args, data, out, code, stderr = _interrupted_run(
        tmp_path, batch, signal.SIGINT, whole_group=True, extra=("--ctc", "--csv")
    )
    assert code == 130, stderr
    assert "dashboard: http" in stderr
    kept = sorted(n for n, s in _statuses(out).items() if s == "done")

    proc = subprocess.run(
        _CMD + [*args, "-q"], capture_output=True, text=True, env=_env(), timeout=300
    )
    assert proc.returncode == 1, proc.stderr  # the corrupt movie failed, the others finished
    assert f"segmented {4 - len(kept)} movie(s)" in proc.stdout, proc.stdout
    assert f"{len(kept)} skipped" in proc.stdout, proc.stdout
    assert "failed: " in proc.stdout and "corrupt.tif" in proc.stdout
    finished = {f"m{i}.tif": "skipped" if f"m{i}.tif" in kept else "done" for i in range(4)}
    assert _statuses(out) == {**finished, "corrupt.tif": "failed"}
    for i in range(4):
        ref = segment_movie(str(data / f"m{i}.tif"), str(data / f"m{i}_clicks.csv"), model=micro)
        np.testing.assert_array_equal(tifffile.imread(out / f"m{i}" / "labels.tif"), ref)
        assert (out / f"m{i}" / "ctc" / "res_track.txt").is_file()
        assert (out / f"m{i}" / "cells.csv").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "0"], "--workers must be at least 1"),
        (["--scheduler", "tcp://h:8786", "--workers", "2"], "bring"),
        ([], "unknown column(s) 'clicks'"),
    ],
)
def test_cli_usage_errors(tmp_path, capsys, extra, message):
    (tmp_path / "m.tif").write_bytes(b"")
    manifest = tmp_path / "manifest.csv"
    text = "movie,find_cells\nm.tif,0\n" if extra else "movie,clicks\nm.tif,c.csv\n"
    manifest.write_text(text)
    assert cli.main(["batch", str(manifest), "--out", str(tmp_path / "out"), *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
