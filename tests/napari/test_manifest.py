"""The npe2 manifest: validation, every python_name importable, sample data, reader/writer."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tifffile

npe2 = pytest.importorskip("npe2")


@pytest.fixture(scope="module")
def manifest():
    return npe2.PluginManifest.from_distribution("napari-sam2")


def test_npe2_validate_cli():
    exe = shutil.which("npe2") or None
    cmd = [exe] if exe else [sys.executable, "-m", "npe2"]
    out = subprocess.run(
        [*cmd, "validate", "napari-sam2", "--imports"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


def test_manifest_contributions(manifest):
    c = manifest.contributions
    assert [w.display_name for w in c.widgets] == ["SAM 2 tracking", "SAM 2 3-D"]
    assert {s.key for s in c.sample_data} == {"nuclei", "phase", "bacteria"}
    assert c.readers[0].filename_patterns == [
        "*labels*.tif",
        "*labels*.tiff",
        "mask*.tif",
        "man_seg*.tif",
    ]
    assert [str(t) for t in c.writers[0].layer_types] == ["labels"]


def test_every_python_name_imports(manifest):
    names = [cmd.python_name for cmd in manifest.contributions.commands]
    assert len(names) == 7
    for python_name in names:
        module, attr = python_name.split(":")
        obj = getattr(importlib.import_module(module), attr)
        assert callable(obj), python_name


@pytest.mark.parametrize("kind", ["nuclei", "phase", "bacteria"])
def test_sample_data(kind):
    from napari_sam2._napari import _sample_data

    fn = getattr(_sample_data, f"make_{kind}_sample")
    ((data, meta, layer_type),) = fn()
    assert layer_type == "image"
    assert data.shape == (_sample_data.SAMPLE_FRAMES, *_sample_data.SAMPLE_SHAPE)
    assert data.dtype == np.uint8 and data.std() > 1  # not blank
    assert meta["name"].startswith("synthetic")


def test_writer_reader_round_trip(tmp_path):
    from napari_sam2._napari._reader import get_reader
    from napari_sam2._napari._writer import write_labels

    labels = np.zeros((4, 32, 40), np.uint16)
    labels[:, 5:15, 6:20] = 3
    labels[2:, 20:30, 25:35] = 70000 - 65535  # 4465
    written = write_labels(str(tmp_path / "lab"), labels, {})
    assert written == [str(tmp_path / "lab.tif")]
    reader = get_reader(written[0])
    assert reader is not None
    ((data, meta, layer_type),) = reader(written[0])
    assert layer_type == "labels" and meta["name"] == "lab"
    np.testing.assert_array_equal(data, labels)
    # uint32 ids survive too
    big = labels.astype(np.uint32) * 20
    path = write_labels(str(tmp_path / "big.tif"), big, {})[0]
    ((data, _, _),) = get_reader(path)(path)
    assert data.dtype == np.uint32
    np.testing.assert_array_equal(data, big)


def test_writer_flattens_channel_view(tmp_path):
    from napari_sam2._napari._writer import write_labels

    vol = np.zeros((3, 16, 16), np.uint16)
    vol[1, 2:6, 2:6] = 2
    s = vol.strides
    view = np.lib.stride_tricks.as_strided(vol, (3, 2, 16, 16), (s[0], 0, s[1], s[2]))
    path = write_labels(str(tmp_path / "v.tif"), view, {})[0]
    np.testing.assert_array_equal(tifffile.imread(path), vol)


def test_reader_claims_foreign_label_stacks_only(tmp_path):
    from napari_sam2._napari._reader import get_reader

    rng = np.random.default_rng(0)
    lab = np.zeros((3, 64, 64), np.uint16)
    lab[:, 10:30, 10:30] = 1
    lab[:, 40:60, 35:50] = 2
    tifffile.imwrite(tmp_path / "fiji_labels.tif", lab, imagej=True)
    assert get_reader(str(tmp_path / "fiji_labels.tif")) is not None
    noisy = rng.integers(100, 4000, size=(3, 64, 64), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "movie.tif", noisy, imagej=True)
    assert get_reader(str(tmp_path / "movie.tif")) is None
    sparse = np.zeros((3, 64, 64), np.uint8)  # mostly black fluorescence: not labels
    sparse[:, 20:30, 20:30] = rng.integers(1, 255, size=(3, 10, 10), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "sparse.tif", sparse, imagej=True)
    assert get_reader(str(tmp_path / "sparse.tif")) is None
    tifffile.imwrite(tmp_path / "float.tif", lab.astype(np.float32), photometric="minisblack")
    assert get_reader(str(tmp_path / "float.tif")) is None
    rgb = np.zeros((64, 64, 3), np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    assert get_reader(str(tmp_path / "rgb.tif")) is None
    (tmp_path / "notes.txt").write_text("x")
    assert get_reader(str(tmp_path / "notes.txt")) is None
    (tmp_path / "broken.tif").write_bytes(b"not a tiff")
    assert get_reader(str(tmp_path / "broken.tif")) is None
    assert get_reader([str(tmp_path / "fiji_labels.tif")] * 2) is None


def test_memory_help_covers_every_setting():
    from dataclasses import fields

    from napari_sam2._napari._help import MEMORY_BOOL_FIELDS, MEMORY_FIELDS
    from napari_sam2.video.memory_bank import MemorySettings

    defaults = MemorySettings()
    names = [f.name for f in fields(MemorySettings)]
    assert list(MEMORY_FIELDS) == names
    assert MEMORY_BOOL_FIELDS == {n for n in names if isinstance(getattr(defaults, n), bool)}
    for label, tip in MEMORY_FIELDS.values():
        assert label and len(tip) > 40
