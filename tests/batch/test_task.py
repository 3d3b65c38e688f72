"""The worker side of a batch, run in this process: movie opening, the model cache, the glibc
trim fix, and a zarr movie segmented like segment_movie does it."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import tifffile
from batch_helpers import blob_movie

from napari_sam2 import segment_movie
from napari_sam2.batch import Job
from napari_sam2.batch.task import (
    RunOptions,
    _keep_freed_memory,
    open_movie,
    run_job,
    worker_model,
)


def test_open_movie_is_lazy(tmp_path):
    zarr = pytest.importorskip("zarr")
    movie = blob_movie(3, 0)
    np.save(tmp_path / "m.npy", movie)
    assert isinstance(open_movie(str(tmp_path / "m.npy")), np.memmap)
    arr = zarr.open(str(tmp_path / "a.zarr"), mode="w", shape=movie.shape, dtype=movie.dtype,
                    chunks=(1, *movie.shape[1:]))
    arr[:] = movie
    assert type(open_movie(str(tmp_path / "a.zarr"))).__module__.startswith("zarr")
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("0", shape=movie.shape, dtype=movie.dtype)
    assert open_movie(str(tmp_path / "g.zarr")).shape == movie.shape
    zarr.open_group(str(tmp_path / "e.zarr"), mode="w")
    with pytest.raises(ValueError, match="without an array '0'"):
        open_movie(str(tmp_path / "e.zarr"))
    with pytest.raises(FileNotFoundError, match="movie not found"):
        open_movie(str(tmp_path / "nope.tif"))
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        open_movie(str(tmp_path / "folder"))
    tifffile.imwrite(tmp_path / "t.tif", movie)
    assert open_movie(str(tmp_path / "t.tif")) == str(tmp_path / "t.tif")  # FrameSource reads it


def test_zarr_movie_like_segment_movie(tmp_path, micro):
    zarr = pytest.importorskip("zarr")
    movie = blob_movie(4, 1)
    arr = zarr.open(str(tmp_path / "z.zarr"), mode="w", shape=movie.shape, dtype=movie.dtype,
                    chunks=(1, *movie.shape[1:]))
    arr[:] = movie
    clicks = tmp_path / "c.csv"
    clicks.write_text("frame,y,x,obj_id\n0,18,15,1\n")
    result = run_job(Job(movie=str(tmp_path / "z.zarr"), prompts=str(clicks)),
                     RunOptions(out_dir=str(tmp_path / "out"), model="micro", device="cpu"))
    assert result.status == "done", result.error
    ref = segment_movie(movie, str(clicks), model=micro)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "z" / "labels.tif"), ref)


def test_failures_are_results_not_exceptions(tmp_path):
    clicks = tmp_path / "c.csv"
    clicks.write_text("frame,y,x,obj_id\n9,18,15,1\n")
    np.save(tmp_path / "m.npy", blob_movie(3, 0))
    opts = RunOptions(out_dir=str(tmp_path / "out"), model="micro", device="cpu")
    bad_frame = run_job(Job(movie=str(tmp_path / "m.npy"), prompts=str(clicks)), opts)
    assert bad_frame.status == "failed" and "frame 9 is out of range" in bad_frame.error
    missing = run_job(Job(movie=str(tmp_path / "m.npy"), prompts=str(tmp_path / "x.csv")), opts)
    assert missing.status == "failed" and "x.csv" in missing.error
    assert list((tmp_path / "out").iterdir()) == []


def test_worker_model_is_loaded_once():
    first, seconds = worker_model("test_tiny_256", "cpu")
    again, seconds_again = worker_model("test_tiny_256", "cpu")
    assert again is first and seconds_again == 0.0 and seconds >= 0.0


def test_trim_threshold_fix_only_where_the_nanny_set_it(monkeypatch):
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert _keep_freed_memory() is False
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    assert _keep_freed_memory() is sys.platform.startswith("linux")


def test_local_cluster_size_fits_the_machine(monkeypatch):
    import psutil

    from napari_sam2.batch import cluster

    monkeypatch.setattr(cluster, "cpu_cores", lambda: 16)
    monkeypatch.setattr(cluster, "gpu_count", lambda device: 0)
    total = psutil.virtual_memory().total
    n, threads = cluster.default_size("cpu")
    assert n == max(1, min(16, total // cluster.WORKER_MEMORY)) and threads == max(1, 16 // n)
    assert cluster.default_size("cpu", threads_per_worker=2)[1] == max(1, 16 // (2 * n))
    monkeypatch.setattr(cluster, "gpu_count", lambda device: 4)
    assert cluster.default_size("cuda") == (4, 4)  # one worker per GPU, the cores shared


def test_gpu_of_a_local_worker(monkeypatch):
    import torch

    from napari_sam2.batch import task

    monkeypatch.setattr(task, "_worker_name", lambda: "3")
    assert task._device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert task._device("cuda") == "cuda:1" and task._device("auto") == "cuda:1"
    monkeypatch.setattr(task, "_worker_name", lambda: "tcp://remote-worker")
    assert task._device("cuda") == "cuda"  # a worker of another cluster: its own GPU choice


def test_cuda_without_a_gpu_fails_before_starting_workers(tmp_path, monkeypatch):
    import torch

    from napari_sam2 import segment_many

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    np.save(tmp_path / "m.npy", blob_movie(2, 0))
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        segment_many([Job(movie=str(tmp_path / "m.npy"), find_cells=0)], out_dir=tmp_path / "o",
                     device="cuda", progress=None)
