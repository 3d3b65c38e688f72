"""Label volumes on disk: memory-mapped label TIFFs made on request or above a size threshold,
used by sessions and ``segment_movie``, with their pages handed back as frames are written."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_sam2.io.tiff import load_labels_tiff
from napari_sam2.pipeline import segment_movie
from napari_sam2.video import _disk_volume
from napari_sam2.video._disk_volume import (
    PageBudget,
    ids_present,
    new_label_volume,
    release_pages,
    widened,
)
from napari_sam2.video.frames import FrameSource
from napari_sam2.video.session import VideoSession

CLICKS = [(0, 14, 16, 1), (0, 32, 46, 2)]  # (frame, y, x, obj_id) on the two blobs


def test_small_volumes_stay_in_memory_and_paths_go_to_disk(tmp_path):
    small = new_label_volume((4, 8, 8))
    assert type(small) is np.ndarray and small.dtype == np.uint16 and not small.any()
    disk = new_label_volume((4, 8, 8), np.uint16, tmp_path / "l.tif", pixel_size=(0.5, 0.5))
    assert isinstance(disk, np.memmap)
    disk[2, 1:3, 1:3] = 7
    release_pages(disk)  # flushes: the file holds the frame at once
    labels = load_labels_tiff(tmp_path / "l.tif")
    assert labels.shape == (4, 8, 8) and labels[2, 1, 1] == 7 and labels.sum() == 28
    assert disk[2, 2, 2] == 7  # still readable after its pages were handed back
    assert ids_present(disk) == {7}


def test_volumes_above_the_threshold_go_to_a_named_temporary_file(monkeypatch):
    monkeypatch.setattr(_disk_volume, "DISK_THRESHOLD_BYTES", 100)
    with pytest.warns(UserWarning, match=r"kept on disk in .*napari-sam2-labels-.*\.tif"):
        vol = new_label_volume((4, 8, 8))
    assert isinstance(vol, np.memmap)
    assert tifffile.TiffFile(vol.filename).series[0].shape == (4, 8, 8)


def test_widening_a_disk_volume_keeps_it_on_disk(tmp_path):
    vol = new_label_volume((3, 8, 8), np.uint16, tmp_path / "l.tif")
    vol[1, 0, 0] = 9
    with pytest.warns(UserWarning, match="kept on disk"):
        wide = widened(vol)
    assert isinstance(wide, np.memmap) and wide.dtype == np.uint32 and wide[1, 0, 0] == 9
    wide[1, 0, 1] = 70000
    assert ids_present(wide) == {9, 70000}


def test_page_budget_releases_after_the_budget_and_keeps_data(tmp_path, monkeypatch):
    vol = new_label_volume((6, 16, 16), np.uint16, tmp_path / "l.tif")
    released = []
    real = _disk_volume.release_pages
    monkeypatch.setattr(
        _disk_volume, "release_pages", lambda arr: (released.append(arr), real(arr))
    )
    budget = PageBudget(every=2 * vol[0].nbytes)
    for t in range(6):
        vol[t] = t + 1
        budget.note(vol, vol[t].nbytes)
    budget.note(np.zeros(4), 10**9)  # not a memory map: ignored
    assert len(released) == 3
    assert [int(v) for v in load_labels_tiff(tmp_path / "l.tif")[:, 0, 0]] == [1, 2, 3, 4, 5, 6]


def test_memory_mapped_movie_reads_survive_page_releases(tmp_path, movie):
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, movie, imagej=True, metadata={"axes": "TYX"})
    with FrameSource(path, image_size=32) as src:
        src._reader.page_budget = PageBudget(every=1)  # hand the pages back after every read
        assert src.backend == "tiff-memmap"
        for t in range(len(movie)):
            np.testing.assert_array_equal(src.raw(t), movie[t])


def test_segment_movie_streams_into_a_label_tiff(model, movie, tmp_path):
    ref = segment_movie(movie, CLICKS, model=model, axes="TYX", direction="forward")
    path = tmp_path / "labels.tif"
    labels = segment_movie(
        movie, CLICKS, model=model, axes="TYX", direction="forward", labels_path=path
    )
    assert isinstance(labels, np.memmap) and labels.filename == str(path)
    assert len(ids_present(ref)) == 2
    np.testing.assert_array_equal(np.asarray(labels), ref)
    np.testing.assert_array_equal(load_labels_tiff(path), ref)


def test_a_session_above_the_threshold_keeps_its_labels_on_disk(model, movie, monkeypatch):
    monkeypatch.setattr(_disk_volume, "DISK_THRESHOLD_BYTES", 1000)
    session = VideoSession(model, movie, axes="TYX", workers=1)
    with pytest.warns(UserWarning, match="kept on disk"):
        session.add_points(0, 1, [[14, 16]], [1])
    for _ in session.propagate(0):
        pass
    vol = session.labels()
    assert isinstance(vol, np.memmap) and vol[: len(movie)].any()
    np.testing.assert_array_equal(load_labels_tiff(vol.filename), np.asarray(vol))
