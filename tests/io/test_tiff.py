"""Tests for napari_sam2.io.tiff: label TIFF round trips, pixel size, atomic writes."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import tifffile

from napari_sam2.io.tiff import atomic_open, load_labels_tiff, read_pixel_size, save_labels_tiff


def _random_labels(shape, max_id, dtype=np.int32):
    rng = np.random.default_rng(1)
    return rng.integers(0, max_id + 1, size=shape).astype(dtype)


@pytest.mark.parametrize(
    ("shape", "axes"),
    [((3, 7, 9), "TYX"), ((2, 3, 7, 9), "TZYX"), ((7, 9), "YX"), ((1, 7, 9), "TYX")],
)
def test_roundtrip_imagej_uint16(tmp_path, shape, axes):
    labels = _random_labels(shape, 300)
    labels.flat[0] = 65535  # largest id that still fits uint16
    path = save_labels_tiff(tmp_path / "labels.tif", labels, pixel_size=(0.25, 0.5))
    assert path == tmp_path / "labels.tif"

    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        ij = tif.imagej_metadata
        assert ij["unit"] == "um"
        assert ij.get("frames", 1) == (shape[0] if "T" in axes else 1)
        assert ij.get("slices", 1) == (shape[1] if "Z" in axes else 1)
        raw = tif.asarray()
        assert raw.dtype == np.uint16
        if 1 not in shape:  # tifffile squeezes length-1 axes in its own reading
            assert tif.series[0].axes == axes

    back = load_labels_tiff(path)
    assert back.shape == shape
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, labels)
    assert read_pixel_size(path) == pytest.approx((0.25, 0.5), rel=1e-6)


def test_uint32_when_ids_exceed_uint16(tmp_path):
    labels = _random_labels((2, 5, 6), 10, dtype=np.int64)
    labels[1, 2, 3] = 70_000
    path = save_labels_tiff(tmp_path / "big.tif", labels, pixel_size=(0.3, 0.7))
    with tifffile.TiffFile(path) as tif:
        assert not tif.is_imagej
        assert not tif.is_ome and not tif.is_bigtiff
        assert tif.shaped_metadata[0]["axes"] == "TYX"
        assert tif.series[0].axes == "TYX"
        assert tif.pages.first.tags["ResolutionUnit"].value == tifffile.RESUNIT.CENTIMETER
    back = load_labels_tiff(path)
    assert back.dtype == np.uint32
    np.testing.assert_array_equal(back, labels)
    assert read_pixel_size(path) == pytest.approx((0.3, 0.7), rel=1e-6)


def test_no_pixel_size(tmp_path):
    path = save_labels_tiff(tmp_path / "a.tif", np.ones((2, 4, 4), np.uint8))
    assert read_pixel_size(path) is None
    assert load_labels_tiff(path).dtype == np.uint16


def test_read_pixel_size_other_units(tmp_path):
    data = np.zeros((4, 4), np.uint8)
    # 2 pixels per mm, 4 per mm -> (y, x) = (250 um, 500 um); standard centimetre unit.
    tifffile.imwrite(tmp_path / "cm.tif", data, resolution=(20, 40), resolutionunit="CENTIMETER")
    assert read_pixel_size(tmp_path / "cm.tif") == pytest.approx((250.0, 500.0))
    tifffile.imwrite(tmp_path / "in.tif", data, resolution=(254, 254), resolutionunit="INCH")
    assert read_pixel_size(tmp_path / "in.tif") == pytest.approx((100.0, 100.0))
    # ImageJ style: unit NONE, unit string in the ImageJ description.
    tifffile.imwrite(
        tmp_path / "ij.tif", data, imagej=True, resolution=(5, 2), metadata={"unit": "micron"}
    )
    assert read_pixel_size(tmp_path / "ij.tif") == pytest.approx((0.5, 0.2))
    tifffile.imwrite(
        tmp_path / "px.tif", data, imagej=True, resolution=(5, 2), metadata={"unit": "pixel"}
    )
    assert read_pixel_size(tmp_path / "px.tif") is None


@pytest.mark.parametrize(
    "bad",
    [
        np.array([[0, -1], [2, 3]], np.int32),
        np.zeros((4, 4), np.float32),
        np.zeros((4, 4), bool),
        np.zeros((4,), np.uint16),
        np.zeros((1, 1, 1, 4, 4), np.uint16),
    ],
)
def test_invalid_labels_raise(tmp_path, bad):
    with pytest.raises(ValueError):
        save_labels_tiff(tmp_path / "x.tif", bad)
    assert list(tmp_path.iterdir()) == []


def test_invalid_pixel_size_raises(tmp_path):
    with pytest.raises(ValueError, match="pixel_size"):
        save_labels_tiff(tmp_path / "x.tif", np.zeros((4, 4), np.uint16), pixel_size=(0, 1))


def test_atomic_write_keeps_previous_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "labels.tif"
    old = np.full((2, 4, 4), 7, np.uint16)
    save_labels_tiff(path, old)
    before = path.read_bytes()

    def failing_imwrite(file, data, **kwargs):
        # Write part of a TIFF, then fail as a full disk or a crash would.
        file.write(b"II*\x00" + b"\x00" * 100)
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", failing_imwrite)
    with pytest.raises(OSError, match="disk full"):
        save_labels_tiff(path, np.ones((3, 4, 4), np.uint16))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["labels.tif"]  # no temp file left

    with pytest.raises(OSError):
        save_labels_tiff(tmp_path / "new.tif", np.ones((3, 4, 4), np.uint16))
    assert [p.name for p in tmp_path.iterdir()] == ["labels.tif"]

    monkeypatch.undo()
    np.testing.assert_array_equal(load_labels_tiff(path), old)


def test_atomic_open_text_and_permissions(tmp_path):
    path = tmp_path / "a.txt"
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write("hello")
        assert not path.exists()  # nothing at the target name until the end
    assert path.read_text() == "hello"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    with pytest.raises(ValueError):
        with atomic_open(path, "a"):
            pass


def test_load_float_tiff_with_integer_values(tmp_path):
    data = np.array([[[0, 1.0], [2, 3]]], np.float32)
    tifffile.imwrite(tmp_path / "f.tif", data)
    back = load_labels_tiff(tmp_path / "f.tif")
    assert np.issubdtype(back.dtype, np.integer)
    np.testing.assert_array_equal(back, data)
    tifffile.imwrite(tmp_path / "g.tif", data + 0.5)
    with pytest.raises(ValueError):
        load_labels_tiff(tmp_path / "g.tif")
