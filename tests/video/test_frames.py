"""Tests for :mod:`napari_sam2.video.frames` (lazy frame reading and preprocessing)."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest
import tifffile
import torch
from frames_reference import MEAN, STD
from frames_reference import expected_float as _expected_float
from frames_reference import random_movie as _movie

from napari_sam2.video.frames import FrameSource


class GuardedArray:
    """Array-like that fails if anything tries to read more than one time point at once."""

    def __init__(self, data: np.ndarray) -> None:
        self._data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.ndim = data.ndim
        self.keys: list = []

    def __getitem__(self, key):
        assert isinstance(key, tuple) and isinstance(key[0], (int, np.integer)), key
        self.keys.append(key)
        return self._data[key]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole movie was materialised")


# ------------------------------------------------------------------------- basic behaviour


def test_numpy_tyx_matches_manual_pipeline():
    movie = _movie()
    src = FrameSource(movie, image_size=16, prefetch=False)
    assert (src.num_frames, src.height, src.width) == (5, 24, 30)
    assert src.frame_shape == (24, 30) and src.dtype == np.uint16 and src.axes == "TYX"
    assert src.backend == "numpy" and len(src) == 5
    lo, hi = src.contrast_limits
    sample = movie.astype(np.float64).ravel()
    np.testing.assert_allclose((lo, hi), np.percentile(sample, (0.5, 99.5)), rtol=1e-6)
    x = src.model_input(2)
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    g = np.clip((movie[2].astype(np.float32) - lo) / (hi - lo), 0, 1)
    expected = _expected_float(np.repeat(g[:, :, None], 3, axis=2), 16)
    torch.testing.assert_close(x, expected, atol=1e-5, rtol=0)
    # all three channels carry the same gray image before normalisation
    un = x * STD + MEAN
    torch.testing.assert_close(un[0], un[2], atol=1e-6, rtol=0)


def test_never_materialises_the_movie():
    data = _movie(t=20)
    guarded = GuardedArray(data)
    src = FrameSource(guarded, image_size=8)
    ref = FrameSource(data, image_size=8, prefetch=False)
    for t in (0, 7, 19):
        torch.testing.assert_close(src.model_input(t), ref.model_input(t), atol=0, rtol=0)
    np.testing.assert_array_equal(src.raw(3), data[3])
    assert src.backend == "array" and len(guarded.keys) > 0
    src.close()


def test_memmap_input(tmp_path):
    data = _movie()
    mm = np.memmap(tmp_path / "m.dat", dtype=data.dtype, mode="w+", shape=data.shape)
    mm[:] = data
    mm.flush()
    ro = np.memmap(tmp_path / "m.dat", dtype=data.dtype, mode="r", shape=data.shape)
    src = FrameSource(ro, image_size=16, prefetch=False)
    ref = FrameSource(data, image_size=16, prefetch=False)
    assert src.backend == "memmap"
    torch.testing.assert_close(src.model_input(4), ref.model_input(4), atol=0, rtol=0)
    raw = src.raw(1)
    assert type(raw) is np.ndarray and not isinstance(raw, np.memmap)
    np.testing.assert_array_equal(raw, data[1])


def test_dask_input():
    da = pytest.importorskip("dask.array")
    data = _movie()
    src = FrameSource(da.from_array(data, chunks=(1, 24, 30)), image_size=16, prefetch=False)
    ref = FrameSource(data, image_size=16, prefetch=False)
    assert src.backend == "dask"
    assert src.contrast_limits == ref.contrast_limits
    torch.testing.assert_close(src.model_input(3), ref.model_input(3), atol=0, rtol=0)


def test_zarr_input():
    zarr = pytest.importorskip("zarr")
    data = _movie()
    z = zarr.zeros(data.shape, chunks=(1, 24, 30), dtype=data.dtype)
    z[:] = data
    src = FrameSource(z, image_size=16, prefetch=False)
    ref = FrameSource(data, image_size=16, prefetch=False)
    assert src.backend == "zarr"
    torch.testing.assert_close(src.model_input(0), ref.model_input(0), atol=0, rtol=0)
    np.testing.assert_array_equal(src.raw(2), data[2])


# ------------------------------------------------------------------------- TIFF


def test_tiff_uncompressed_is_memory_mapped(tmp_path):
    data = _movie()
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, data)
    ref = FrameSource(data, image_size=16, prefetch=False)
    with FrameSource(str(path), image_size=16, prefetch=False) as src:
        assert src.backend == "tiff-memmap" and isinstance(src._reader.movie, np.memmap)
        assert src.axes == "TYX" and src.num_frames == 5
        torch.testing.assert_close(src.model_input(1), ref.model_input(1), atol=0, rtol=0)
        np.testing.assert_array_equal(src.raw(4), data[4])


def test_tiff_compressed_reads_page_by_page(tmp_path):
    t, h, w = 64, 384, 384
    yy, xx = np.mgrid[0:h, 0:w]
    frame = ((yy * 7 + xx * 3) % 4096).astype(np.uint16)
    movie = np.stack([frame + i for i in range(t)])  # smooth: compresses well, writes fast
    path = tmp_path / "zlib.tif"
    tifffile.imwrite(path, movie, compression="zlib")
    full_bytes = movie.nbytes  # 18.9 MB
    del movie
    tracemalloc.start()
    try:
        src = FrameSource(path, image_size=32)
        x = src.model_input(10)
        raw = src.raw(63)
        src.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert src.backend == "tiff-pages"
    assert peak < full_bytes / 3, f"peak {peak / 1e6:.1f} MB for a {full_bytes / 1e6:.1f} MB movie"
    assert x.shape == (3, 32, 32) and torch.isfinite(x).all()
    np.testing.assert_array_equal(raw, frame + 63)


def test_tiff_compressed_multichannel_matches_array(tmp_path):
    data = np.random.default_rng(1).random((3, 2, 20, 22)).astype(np.float32)
    path = tmp_path / "tcyx.tif"
    tifffile.imwrite(path, data, compression="zlib", metadata={"axes": "TCYX"})
    src = FrameSource(path, channel=1, image_size=16, prefetch=False)
    ref = FrameSource(data, axes="TCYX", channel=1, image_size=16, prefetch=False)
    assert src.backend == "tiff-pages" and src.axes == "TCYX" and src.num_channels == 2
    torch.testing.assert_close(src.model_input(2), ref.model_input(2), atol=0, rtol=0)
    np.testing.assert_array_equal(src.raw(1), data[1].transpose(1, 2, 0))
    src.close()


def test_tiff_rgb_compressed(tmp_path):
    data = np.random.default_rng(2).integers(0, 256, (3, 20, 22, 3), dtype=np.uint8)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, data, photometric="rgb", compression="zlib")
    src = FrameSource(path, contrast_limits=(0, 255), image_size=16, prefetch=False)
    ref = FrameSource(data, axes="TYXC", contrast_limits=(0, 255), image_size=16, prefetch=False)
    assert src.axes == "TYXC"
    torch.testing.assert_close(src.model_input(1), ref.model_input(1), atol=0, rtol=0)
    src.close()


def test_tiff_imagej_axes_metadata(tmp_path):
    data = np.random.default_rng(3).integers(0, 200, (4, 1, 2, 20, 22), dtype=np.uint8)
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZCYX"})
    with pytest.warns(UserWarning, match="2 channels; using channel 0"):
        src = FrameSource(path, image_size=16, prefetch=False)
    assert src.axes == "TCYX" and src.num_frames == 4 and src.num_channels == 2
    np.testing.assert_array_equal(src.raw(3), data[3, 0].transpose(1, 2, 0))
    src.close()

    zstack = tmp_path / "z.tif"
    tifffile.imwrite(
        zstack, np.zeros((2, 3, 20, 22), np.uint8), imagej=True, metadata={"axes": "TZYX"}
    )
    with pytest.raises(ValueError, match="Z axis with 3 planes and a T axis.*VolumeTimeSession"):
        FrameSource(zstack)


def test_missing_tiff_and_non_tiff(tmp_path):
    with pytest.raises(FileNotFoundError):
        FrameSource(tmp_path / "nope.tif")
    bad = tmp_path / "x.tif"
    bad.write_text("not a tiff")
    with pytest.raises(ValueError, match="TIFF"):
        FrameSource(bad)


# ------------------------------------------------------------------------- intensities


@pytest.mark.parametrize(
    "dtype",
    [np.uint8, np.uint16, np.int16, np.int32, np.float16, np.float32, np.float64],
)
def test_dtypes_give_the_same_normalised_frames(dtype):
    base = (np.arange(3 * 12 * 14) % 101).reshape(3, 12, 14)  # values 0..100
    data = (base - (50 if np.dtype(dtype).kind in "if" else 0)).astype(dtype)
    src = FrameSource(data, image_size=10, prefetch=False)
    ref = FrameSource(base.astype(np.float64), image_size=10, prefetch=False)
    assert src.dtype == np.dtype(dtype)
    np.testing.assert_allclose(src.normalized(1), ref.normalized(1), atol=1e-6)
    x = src.model_input(1)
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    torch.testing.assert_close(x, ref.model_input(1), atol=1e-5, rtol=0)


def test_bool_movie():
    data = np.zeros((2, 12, 14), bool)
    data[:, 3:6, 4:9] = True
    src = FrameSource(data, image_size=12, prefetch=False)
    assert src.contrast_limits == (0.0, 1.0)
    np.testing.assert_array_equal(src.normalized(0)[..., 0], data[0].astype(np.float32))
    assert torch.isfinite(src.model_input(1)).all()


def test_nan_and_inf_are_replaced():
    data = np.random.default_rng(8).random((3, 12, 14)).astype(np.float32) * 100
    data[0, 0, 0] = np.nan
    data[0, 0, 1] = np.inf
    data[0, 0, 2] = -np.inf
    src = FrameSource(data, image_size=8, prefetch=False)
    lo, hi = src.contrast_limits
    finite = data[np.isfinite(data)].astype(np.float64)
    np.testing.assert_allclose((lo, hi), np.percentile(finite, (0.5, 99.5)), rtol=1e-6)
    img = src.normalized(0)[..., 0]
    assert img[0, 0] == 0.0 and img[0, 1] == 1.0 and img[0, 2] == 0.0
    assert torch.isfinite(src.model_input(0)).all()
    all_nan = FrameSource(np.full((2, 8, 8), np.nan), image_size=8, prefetch=False)
    assert all_nan.contrast_limits == (0.0, 1.0)
    assert torch.isfinite(all_nan.model_input(0)).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_constant_movie(dtype):
    src = FrameSource(np.full((3, 10, 12), 7, dtype), image_size=8, prefetch=False)
    assert src.contrast_limits == (7.0, 7.0)
    assert np.all(src.normalized(2) == 0)
    x = src.model_input(2)
    assert torch.isfinite(x).all()
    torch.testing.assert_close(x, ((torch.zeros(3, 8, 8) - MEAN) / STD), atol=1e-6, rtol=0)
    # a degenerate user window is a step at lo
    step = FrameSource(
        np.array([[[1.0, 5.0, 9.0]]]).repeat(4, 1),
        contrast_limits=(5, 5),
        image_size=4,
        prefetch=False,
    )
    np.testing.assert_array_equal(step.normalized(0)[0, :, 0], [0, 0, 1])


def test_sparse_spots_fall_back_to_min_max():
    data = np.zeros((2, 40, 40), np.uint16)
    data[:, 5, 5] = 1000  # far fewer than 0.5 % of the pixels
    src = FrameSource(data, image_size=8, prefetch=False)
    assert src.contrast_limits == (0.0, 1000.0)


def test_global_window_no_flicker():
    base = np.random.default_rng(9).random((16, 18)).astype(np.float32) + 0.1
    movie = np.stack([base * (1 + t) for t in range(6)])  # only the brightness changes
    src = FrameSource(movie, image_size=8, prefetch=False)
    windows = {src.contrast_limits for _ in range(3)}
    assert len(windows) == 1
    dim, bright = src.normalized(0), src.normalized(5)
    assert bright.mean() > dim.mean() + 0.2  # a per-frame window would make them equal
    # the window comes from frames spread over the whole movie, not the first frame
    lo, hi = src.contrast_limits
    assert hi > base.max() * 5


def test_bad_contrast_limits():
    with pytest.raises(ValueError, match="lo <= hi"):
        FrameSource(_movie(), contrast_limits=(10, 1))
    with pytest.raises(ValueError, match="contrast_limits"):
        FrameSource(_movie(), contrast_limits=(0, 1, 2))
    with pytest.raises(ValueError, match="lo <= hi"):
        FrameSource(_movie(), contrast_limits=(0, np.nan))


def test_sampling_reads_at_most_16_frames():
    data = _movie(t=100, h=8, w=8)
    guarded = GuardedArray(data)
    src = FrameSource(guarded, image_size=8, prefetch=False)
    _ = src.contrast_limits
    ts = sorted({k[0] for k in guarded.keys})
    assert len(ts) == 16 and ts[0] == 0 and ts[-1] == 99


# ------------------------------------------------------------------------- parity with Meta


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parity
def test_uint8_rgb_matches_meta_loader(tmp_path, size):
    from PIL import Image

    from reference import import_sam2

    import_sam2()
    from sam2.utils.misc import _load_img_as_tensor

    rng = np.random.default_rng(10)
    movie = rng.integers(0, 256, (2, 41, 53, 3), dtype=np.uint8)
    movie[1, 10:30, 10:40] = 255  # some structure
    src = FrameSource(movie, axes="TYXC", contrast_limits=(0, 255), image_size=size, prefetch=False)
    for t in range(2):
        png = tmp_path / f"{t}.png"
        Image.fromarray(movie[t]).save(png)  # lossless
        img, h, w = _load_img_as_tensor(str(png), size)
        assert (h, w) == (41, 53)
        # Meta: frames go into a float32 tensor, then -= mean, /= std
        expected = torch.zeros(3, size, size, dtype=torch.float32)
        expected[:] = img
        expected -= MEAN
        expected /= STD
        got = src.model_input(t)
        assert (got - expected).abs().max().item() <= 1e-6

    # gray uint8 with the (0, 255) window equals Meta's L -> RGB conversion
    gray = FrameSource(movie[..., 0], contrast_limits=(0, 255), image_size=size, prefetch=False)
    png = tmp_path / "gray.png"
    Image.fromarray(movie[0, ..., 0]).save(png)
    img, _, _ = _load_img_as_tensor(str(png), size)
    expected = (img.float() - MEAN) / STD
    assert (gray.model_input(0) - expected).abs().max().item() <= 1e-6


def test_float_path_uses_antialiased_bilinear():
    data = np.random.default_rng(11).random((2, 50, 70)).astype(np.float32)
    src = FrameSource(data, contrast_limits=(0, 1), image_size=16, prefetch=False)
    img = np.repeat(data[1][:, :, None], 3, axis=2)
    torch.testing.assert_close(src.model_input(1), _expected_float(img, 16), atol=1e-6, rtol=0)
    # same size: no resampling at all
    same = FrameSource(data[:, :16, :16], contrast_limits=(0, 1), image_size=16, prefetch=False)
    expected = (torch.from_numpy(data[0, :16, :16]).expand(3, 16, 16) - MEAN) / STD
    torch.testing.assert_close(same.model_input(0), expected, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------- prefetch + cache


def test_prefetch_gives_identical_values_and_bounded_cache():
    data = np.random.default_rng(12).random((9, 20, 22)).astype(np.float32)
    plain = FrameSource(data, image_size=16, prefetch=False)
    pre = FrameSource(data, image_size=16, prefetch=True, cache_size=2)
    order = list(range(9)) + list(range(8, -1, -1)) + [4, 2, 7]
    for t in order:
        torch.testing.assert_close(pre.model_input(t), plain.model_input(t), atol=0, rtol=0)
        assert len(pre._cache) <= 2
    # going backward prefetches t - 1
    pre.model_input(6)
    pre.model_input(5)
    assert pre.direction == -1 and 4 in pre._cache
    pre.model_input(2, direction=1)
    assert 3 in pre._cache
    # the returned tensor is a copy: modifying it does not poison the cache
    x = pre.model_input(3)
    x.zero_()
    torch.testing.assert_close(pre.model_input(3), plain.model_input(3), atol=0, rtol=0)
    pre.prefetch(8)
    torch.testing.assert_close(pre.model_input(8), plain.model_input(8), atol=0, rtol=0)
    pre.close()
    assert not plain._cache or len(plain._cache) <= 2


def test_thread_safety():
    data = np.random.default_rng(13).random((6, 20, 22)).astype(np.float32)
    plain = FrameSource(data, image_size=16, prefetch=False)
    expected = [plain.model_input(t) for t in range(6)]
    src = FrameSource(data, image_size=16)
    errors = []

    def worker(seq):
        try:
            for t in seq:
                assert torch.equal(src.model_input(t), expected[t])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=(s,))
        for s in ([0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [2, 2, 3, 1, 5])
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    src.close()
    assert not errors, errors


def test_frame_index_errors():
    src = FrameSource(_movie(), image_size=8)
    for bad in (5, -1, 2.0, True):
        with pytest.raises(ValueError, match="frame index"):
            src.model_input(bad)
    with pytest.raises(ValueError, match=r"valid 0\.\.4"):
        src.raw(7)
    assert src.model_input(np.int64(4)).shape == (3, 8, 8)


# ------------------------------------------------------------------------- ROI


def test_roi_crop_and_update():
    data = np.random.default_rng(14).random((4, 30, 40)).astype(np.float32)
    roi = (5, 8, 25, 30)
    src = FrameSource(data, roi=roi, image_size=16)
    ref = FrameSource(
        data[:, 5:25, 8:30], contrast_limits=src.contrast_limits, image_size=16, prefetch=False
    )
    assert src.roi == roi and src.region_shape == (20, 22) and src.frame_shape == (30, 40)
    assert src.roi_slices == (slice(5, 25), slice(8, 30))
    torch.testing.assert_close(src.model_input(1), ref.model_input(1), atol=0, rtol=0)
    assert src.normalized(1).shape == (20, 22, 3)
    assert src.raw(1).shape == (30, 40)  # raw ignores the ROI
    # the window is the movie's, not the ROI's
    full = FrameSource(data, image_size=16, prefetch=False)
    assert src.contrast_limits == full.contrast_limits
    # changing the ROI drops cached (and prefetched) frames
    src.model_input(2)
    src.roi = None
    assert src.roi is None and src.region_shape == (30, 40)
    torch.testing.assert_close(src.model_input(2), full.model_input(2), atol=0, rtol=0)
    torch.testing.assert_close(src.model_input(3), full.model_input(3), atol=0, rtol=0)
    src.roi = (0, 0, 30, 40)  # the full frame is the same as no ROI
    assert src.roi is None
    src.close()


@pytest.mark.parametrize("roi", [(0, 0, 31, 40), (5, 5, 5, 10), (-1, 0, 10, 10), (1, 2, 3)])
def test_bad_roi(roi):
    with pytest.raises(ValueError, match="roi"):
        FrameSource(np.zeros((2, 30, 40)), roi=roi)
