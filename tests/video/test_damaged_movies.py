"""Damaged movies: truncated TIFFs are refused (or used up to their last complete frame with
``allow_partial``), a frame that fails to decode is named, and an error reading ahead never
discards the frame before it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sam2.video.frames import (
    DamagedMovieError,
    FrameReadError,
    FrameSource,
    PartialMovieWarning,
)
from napari_sam2.video.session import VideoSession

T, H, W = 12, 48, 64


@pytest.fixture(autouse=True)
def _quiet_tifffile():
    """tifffile logs an error for every truncated file it opens; the tests check ours."""
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def _frames() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 4000, (T, H, W)).astype(np.uint16)


def _write(path: Path, kind: str) -> np.ndarray:
    data = _frames()
    if kind == "imagej":
        tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TYX"})
    elif kind == "shaped":
        tifffile.imwrite(path, data)  # tifffile's JSON shape in the first page
    elif kind == "no-metadata":
        tifffile.imwrite(path, data, metadata=None)  # pages only
    elif kind == "zlib":
        tifffile.imwrite(path, data, compression="zlib")
    return data


def _cut(path: Path, keep_frames: float) -> Path:
    """Keep the file up to the middle of frame ``int(keep_frames)`` (as a copy cut short)."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[int(keep_frames)]
        end = page.dataoffsets[0] + page.databytecounts[0] // 2
    cut = path.with_name("cut_" + path.name)
    cut.write_bytes(path.read_bytes()[:end])
    return cut


@pytest.mark.parametrize("kind", ["imagej", "shaped", "zlib"])
def test_truncated_movie_names_the_file_and_first_bad_frame(tmp_path, kind):
    data = _write(tmp_path / f"{kind}.tif", kind)
    cut = _cut(tmp_path / f"{kind}.tif", 5)
    with pytest.raises(DamagedMovieError) as info:
        FrameSource(cut, image_size=32)
    msg = str(info.value)
    assert str(cut) in msg and f"promise {T} frames" in msg
    assert "frame 5 is missing or cut off" in msg and "allow_partial=True" in msg
    assert isinstance(info.value, ValueError) and info.value.damage.good_frames == 5

    with pytest.warns(PartialMovieWarning, match="using frames 0-4 only"):
        src = FrameSource(cut, image_size=32, allow_partial=True)
    with src:
        assert src.num_frames == 5 and src.axes == "TYX"
        for t in range(5):
            np.testing.assert_array_equal(src.raw(t), data[t])
        src.model_input(4)


def test_plain_pages_with_a_cut_page_chain(tmp_path):
    """No metadata promise a frame count: the page chain pointing past the end does."""
    data = _write(tmp_path / "pages.tif", "no-metadata")
    raw = (tmp_path / "pages.tif").read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DamagedMovieError, match=r"page table points past the end.*frame \d"):
        FrameSource(cut, image_size=32)
    with pytest.warns(PartialMovieWarning):
        src = FrameSource(cut, image_size=32, allow_partial=True)
    with src:
        assert 1 <= src.num_frames < T
        np.testing.assert_array_equal(src.raw(src.num_frames - 1), data[src.num_frames - 1])


def test_nothing_complete_is_an_error_even_with_allow_partial(tmp_path):
    _write(tmp_path / "m.tif", "imagej")
    cut = _cut(tmp_path / "m.tif", 0)
    for allow in (False, True):
        with pytest.raises(DamagedMovieError, match="not even frame 0 is complete"):
            FrameSource(cut, image_size=32, allow_partial=allow)


def test_intact_files_pass_the_check(tmp_path):
    for kind in ("imagej", "shaped", "no-metadata", "zlib"):
        data = _write(tmp_path / f"{kind}.tif", kind)
        with FrameSource(tmp_path / f"{kind}.tif", image_size=32) as src:
            assert src.num_frames == T
            np.testing.assert_array_equal(src.raw(T - 1), data[T - 1])


def test_session_refuses_a_truncated_movie(model, tmp_path):
    _write(tmp_path / "m.tif", "imagej")
    cut = _cut(tmp_path / "m.tif", 3)
    with pytest.raises(DamagedMovieError, match="frame 3 is missing"):
        VideoSession(model, str(cut))
    with pytest.warns(PartialMovieWarning):
        session = VideoSession(model, str(cut), allow_partial=True)
    assert session.num_frames == 3
    session.frames.close()


def _damage_page(path: Path, page_index: int) -> None:
    """Overwrite the start of a compressed page's data (its zlib header) with garbage."""
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages[page_index].dataoffsets[0]
    raw = bytearray(path.read_bytes())
    raw[offset : offset + 8] = b"\xff" * 8
    path.write_bytes(bytes(raw))


def test_a_page_that_fails_to_decode_is_named(tmp_path):
    data = _write(tmp_path / "z.tif", "zlib")
    _damage_page(tmp_path / "z.tif", 10)
    with FrameSource(tmp_path / "z.tif", image_size=32) as src:  # the layout is intact
        np.testing.assert_array_equal(src.raw(9), data[9])
        with pytest.raises(FrameReadError) as info:
            src.raw(10)
        assert info.value.frame == 10
        assert f"could not read frame 10 of {tmp_path / 'z.tif'}" in str(info.value)
        # the intensity window is estimated from the other frames, not hidden by the bad one
        lo, hi = src.contrast_limits
        assert 0 <= lo < hi <= 4000
        with pytest.raises(FrameReadError, match="frame 10"):
            src.model_input(10)


class _FailingMovie:
    """(T, H, W) array-like whose frame ``bad`` raises, like a damaged file or a lost share."""

    def __init__(self, frames: np.ndarray, bad: int) -> None:
        self._frames, self.bad = frames, bad
        self.shape, self.dtype, self.ndim = frames.shape, frames.dtype, frames.ndim

    def __getitem__(self, index):
        if index[0] == self.bad:
            raise OSError("Input/output error (simulated)")
        return self._frames[index]


@pytest.mark.parametrize("workers", [1, 2])
def test_error_ahead_surfaces_only_after_the_frame_before(model, movie, workers):
    """Frame 5 unreadable: frames 0-4 are yielded and written, then frame 5's error, named."""
    sessions = {}
    for w in sorted({1, workers}):
        session = VideoSession(model, _FailingMovie(movie, 5), axes="TYX", workers=w)
        session.add_points(0, 1, [[14, 16]], [1])
        session.add_points(0, 2, [[32, 46]], [1])
        done = []
        with pytest.raises(FrameReadError, match="could not read frame 5 of the movie") as info:
            for result in session.propagate(0):
                done.append(result.frame)
        assert done == [0, 1, 2, 3, 4]
        assert info.value.frame == 5
        assert session.labels()[:5].any() and not session.labels()[5:].any()
        sessions[w] = session
    # the frames kept equal those of sequential processing
    seq, par = sessions[1].labels(), sessions[workers].labels()
    assert np.mean(seq != par) < 1e-3
