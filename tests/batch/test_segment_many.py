"""segment_many on a local cluster of 2 worker processes (the bundled micro model): the labels
of movie-by-movie segment_movie runs, the summary, the rerun, a stopped batch, a killed worker."""

from __future__ import annotations

import csv
import os
import signal
import threading
import time

import numpy as np
import pytest
import tifffile
from batch_helpers import blob_movie, clicks_csv, hidden_entries, write_movie

from napari_sam2 import segment_many
from napari_sam2.batch import Job
from napari_sam2.batch.outputs import MovieResult
from napari_sam2.batch.task import RunOptions, run_job


def _summary(out):
    with open(out / "summary.csv", newline="") as fh:
        return {row["movie"]: row for row in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def first_run(batch, dask_client, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    results = segment_many(batch["manifest"], out_dir=out, client=dask_client, model="micro",
                           csv=True, progress=None)
    return out, results


def test_six_movies_one_corrupt(batch, first_run):
    out, results = first_run
    names = ["w0", "w1", "w2", "seeded", "twochan", "corrupt"]
    assert [r.name for r in results] == names
    by_name = {r.name: r for r in results}
    for name, ref in batch["reference"].items():
        r = by_name[name]
        assert r.status == "done", r.error
        labels = tifffile.imread(out / name / "labels.tif")
        np.testing.assert_array_equal(labels, ref)  # identical to segment_movie alone
        assert (r.frames, r.objects) == (4, len(np.unique(ref)) - 1)
        assert r.objects >= 1 and r.seconds > 0
        with open(out / name / "cells.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert {int(row["obj_id"]) for row in rows} == set(np.unique(ref)) - {0}
    bad = by_name["corrupt"]
    assert bad.status == "failed" and "corrupt.tif" in bad.error and bad.frames is None
    assert not (out / "corrupt").exists()
    summary = _summary(out)
    assert list(summary) == [r.movie for r in results]
    assert summary[bad.movie]["status"] == "failed" and summary[bad.movie]["error"] == bad.error
    done = summary[by_name["seeded"].movie]
    assert done["status"] == "done" and done["frames"] == "4" and done["error"] == ""
    assert done["objects"] == str(by_name["seeded"].objects)
    assert hidden_entries(out) == []
    # each worker loaded the model once: at most two movies paid for loading it
    assert sum(1 for r in results if r.model_seconds) <= 2


def test_rerun_skips_finished_movies(batch, first_run, dask_client):
    out, results = first_run
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/labels.tif")}
    again = segment_many(batch["manifest"], out_dir=out, client=dask_client, model="micro",
                         csv=True, progress=None)
    status = {r.name: r.status for r in again}
    assert status == {**{n: "skipped" for n in batch["reference"]}, "corrupt": "failed"}
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/labels.tif")} == stamps
    skipped = next(r for r in again if r.name == "w1")
    first = next(r for r in results if r.name == "w1")
    assert (skipped.frames, skipped.objects) == (first.frames, first.objects)
    assert _summary(out)[skipped.movie]["status"] == "skipped"
    # asking for an output the finished folders lack redoes them; force redoes everything (here
    # on the cluster joined by its scheduler address, as --scheduler does)
    ctc = segment_many([Job(movie=batch["args"]["w0"]["movie"],
                            prompts=batch["args"]["w0"]["prompts"])],
                       out_dir=out, client=dask_client, model="micro", ctc=True, progress=None)
    assert ctc[0].status == "done" and (out / "w0" / "ctc" / "res_track.txt").is_file()
    forced = segment_many([Job(movie=batch["args"]["w1"]["movie"],
                               prompts=batch["args"]["w1"]["prompts"])],
                          out_dir=out, client=dask_client.scheduler.address, model="micro",
                          force=True, progress=None)
    assert forced[0].status == "done"
    np.testing.assert_array_equal(tifffile.imread(out / "w1" / "labels.tif"),
                                  batch["reference"]["w1"])


def test_a_stopped_batch_writes_nothing(batch, dask_client, tmp_path):
    """A movie whose batch stop event is set ends as 'cancelled' with no file (run in this
    process, as a worker would run it)."""
    from distributed import Event

    event = Event("napari-sam2-stop-test", client=dask_client)
    event.set()
    opts = RunOptions(out_dir=str(tmp_path), model="micro", stop_event=event.name)
    job = Job(**batch["args"]["w0"])
    result = run_job(job, opts)
    assert result.status == "cancelled" and "stopped" in result.error
    assert list(tmp_path.iterdir()) == []
    event.clear()
    assert run_job(job, opts).status == "done"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w0"]


@pytest.mark.slow
def test_killed_worker_movie_is_retried_elsewhere(batch, dask_client, tmp_path, micro):
    """End a worker's process while it segments a long movie: the movie is redone by a worker
    (the cluster restarts the dead one), with the labels of segment_movie; nothing half-written
    survives."""
    from napari_sam2 import segment_movie

    long_movie = write_movie(tmp_path / "long.tif", blob_movie(24, 2))
    clicks = clicks_csv(tmp_path / "long_clicks.csv", 2)
    jobs = [Job(movie=str(long_movie), prompts=str(clicks)), Job(**batch["args"]["w2"])]
    out = tmp_path / "out"
    box: dict[str, list[MovieResult]] = {}
    runner = threading.Thread(
        target=lambda: box.update(results=segment_many(
            jobs, out_dir=out, client=dask_client, model="micro", progress=None)),
        daemon=True,
    )
    runner.start()
    victim, staged = None, []
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:
        staged = [p for p in out.glob(".long.partial-*")] if out.exists() else []
        if staged:
            for addr, keys in dask_client.processing().items():
                if any(str(k).startswith("segment-long-") for k in keys):
                    victim = addr
        time.sleep(0.05)
    assert victim is not None, "the long movie never started"
    pid = dask_client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    runner.join(timeout=240)
    assert not runner.is_alive()
    long_result, short_result = box["results"]
    assert long_result.status == "done", long_result.error
    assert short_result.status == "done", short_result.error
    ref = segment_movie(str(long_movie), str(clicks), model=micro)
    np.testing.assert_array_equal(tifffile.imread(out / "long" / "labels.tif"), ref)
    import json

    assert json.loads((out / "long" / "result.json").read_text())["pid"] != pid
    assert not any(p.exists() for p in staged)
    assert hidden_entries(out) == [] and sorted(p.name for p in out.iterdir()) == [
        "long", "summary.csv", "w2"
    ]
