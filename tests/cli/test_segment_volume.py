"""segment_movie and ``napari-sam2 segment`` on z-stacks (ZYX) and 3-D + time (TZYX)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from napari_sam2 import cli, load_model
from napari_sam2.io.volumes import read_voxel_size
from napari_sam2.pipeline import segment_movie


@pytest.fixture(scope="module")
def model():
    """test_tiny_256, random weights, positive object-score bias (masks are never empty)."""
    torch.manual_seed(0)
    net = load_model("test_tiny_256", device="cpu")
    net.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.data.fill_(6.0)
    return net.eval()


def _stack(z=5, h=32, w=40):
    zz, yy, xx = np.mgrid[:z, :h, :w]
    vol = np.full((z, h, w), 100.0)
    vol[((zz - 2) * 3) ** 2 + (yy - 16) ** 2 + (xx - 20) ** 2 < 64] = 1000.0
    return vol.astype(np.uint16)


def test_segment_movie_zyx_with_z_prompts(model):
    vol = _stack()
    labels = segment_movie(vol, [{"z": 2, "y": 16, "x": 20, "obj_id": 3}], axes="ZYX", model=model)
    assert labels.shape == (5, 32, 40) and (labels[2] == 3).any()
    assert set(np.unique(labels)) <= {0, 3}
    done = []
    segment_movie(
        vol,
        [(2, 16, 20, 1)],
        axes="ZYX",
        model=model,
        direction="forward",
        progress=lambda d, n: done.append((d, n)),
    )  # a tuple prompt's frame is the slice of a z-stack
    assert done and done[-1][1] == 5


def test_segment_movie_tzyx(model):
    movie = np.stack([_stack(), _stack()])
    labels = segment_movie(
        movie, [{"frame": 1, "z": 2, "y": 16, "x": 20, "obj_id": 1}], axes="TZYX", model=model
    )
    assert labels.shape == (2, 5, 32, 40) and (labels[1, 2] == 1).any()
    with pytest.raises(ValueError, match="needs its slice z"):
        segment_movie(movie, [(0, 16, 20, 1)], axes="TZYX", model=model)
    with pytest.raises(ValueError, match="z 7 is out of range"):
        segment_movie(
            movie, [{"frame": 0, "z": 7, "y": 1, "x": 1, "obj_id": 1}], axes="TZYX", model=model
        )
    with pytest.raises(ValueError, match="seed_labels is not available for 3-D"):
        segment_movie(
            movie[0],
            [(2, 16, 20, 1)],
            axes="ZYX",
            model=model,
            seed_labels=np.ones((32, 40), np.uint16),
        )


def _npy_inputs(tmp_path, monkeypatch, model, name: str, array: np.ndarray, prompts: str):
    """The CLI's model replaced by ``model``; ``array`` saved as ``name`` and the prompt CSV
    text written beside it. Returns (movie path, prompts path)."""
    import napari_sam2.cli.segment as seg

    monkeypatch.setattr(seg, "_load_model_cli", lambda *a, **k: model)
    movie = tmp_path / name
    np.save(movie, array)
    clicks = tmp_path / "c.csv"
    clicks.write_text(prompts)
    return movie, clicks


def test_cli_segment_4d_tiff_keeps_voxel_size(tmp_path, model, monkeypatch):
    import napari_sam2.cli.segment as seg

    monkeypatch.setattr(seg, "_load_model_cli", lambda *a, **k: model)
    movie = tmp_path / "cells.tif"
    tifffile.imwrite(
        movie,
        np.stack([_stack(), _stack()]),
        imagej=True,
        resolution=(2.0, 2.0),
        metadata={"axes": "TZYX", "spacing": 1.5, "unit": "um"},
    )
    clicks = tmp_path / "clicks.csv"  # napari's Points CSV of a 4-D layer: t, z, y, x
    clicks.write_text("index,axis-0,axis-1,axis-2,axis-3,obj_id\n0,0,2,16,20,4\n")
    out, ctc, csv = tmp_path / "labels.tif", tmp_path / "01_RES", tmp_path / "m.csv"
    rc = cli.main(
        [
            "segment",
            str(movie),
            "--prompts",
            str(clicks),
            "--out",
            str(out),
            "--ctc",
            str(ctc),
            "--csv",
            str(csv),
            "-q",
        ]
    )  # axes from the file
    assert rc == 0
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "TZYX" and tif.asarray().shape == (2, 5, 32, 40)
    assert read_voxel_size(out) == pytest.approx((1.5, 0.5, 0.5))
    assert (ctc / "mask000.tif").exists() and (ctc / "res_track.txt").read_text() == "4 0 1 0\n"
    header = csv.read_text().splitlines()[0].split(",")
    assert {"voxels", "volume_um3", "z_centroid", "z_centroid_um"} <= set(header)


def test_cli_segment_zstack_with_given_voxel_size(tmp_path, model, monkeypatch):
    movie, clicks = _npy_inputs(tmp_path, monkeypatch, model, "stack.npy", _stack(),
                                "z,y,x,obj_id\n2,16,20,1\n")
    out = tmp_path / "z.tif"
    rc = cli.main(
        [
            "segment",
            str(movie),
            "--axes",
            "ZYX",
            "--prompts",
            str(clicks),
            "--voxel-size",
            "2",
            "0.5",
            "0.5",
            "--out",
            str(out),
            "-q",
        ]
    )
    assert rc == 0
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "ZYX"
    assert read_voxel_size(out) == pytest.approx((2.0, 0.5, 0.5))
    rc = cli.main(
        [
            "segment",
            str(movie),
            "--axes",
            "ZYX",
            "--prompts",
            str(clicks),
            "--find-cells",
            "0",
            "--out",
            str(out),
            "-q",
        ]
    )
    assert rc != 0


def test_segment_movie_reads_zyx_axes_from_the_tiff(tmp_path, model):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, _stack(), imagej=True, metadata={"axes": "ZYX"})
    labels = segment_movie(str(path), [{"z": 2, "y": 16, "x": 20, "obj_id": 1}], model=model)
    assert labels.shape == (5, 32, 40) and (labels[2] == 1).any()


@pytest.fixture(scope="module")
def micro():
    """The bundled model: a cell that divides needs masks that follow it."""
    return load_model("micro", device="cpu")


def _dividing_movie(frames: int = 4) -> np.ndarray:
    """(T, 7, 64, 64): one round nucleus on t = 0, 1 that has split into two, 24 px apart
    (centre to centre), from t = 2 on."""
    shape = (7, 64, 64)
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]

    def ball(y, x, r):
        return ((zz - 3) * 2.0) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= r * r

    movie = np.full((frames, *shape), 0.1, np.float32)
    movie[:2][:, ball(32, 32, 10)] = 0.9
    movie[2:][:, ball(32, 20, 8) | ball(32, 44, 8)] = 0.9
    return movie


def test_segment_movie_tzyx_divisions_give_daughters_and_lineage(micro):
    movie = _dividing_movie()
    click = [{"frame": 0, "z": 3, "y": 32, "x": 32, "obj_id": 1}]
    labels, lineage = segment_movie(
        movie, click, axes="TZYX", model=micro, divisions=True, return_lineage=True
    )
    assert labels.shape == movie.shape
    assert sorted(lineage.values()) == [1, 1] and 1 not in lineage  # two daughters of 1
    daughters = sorted(lineage)
    assert daughters[0] > 1
    last = max(t for t in range(len(movie)) if (labels[t] == 1).any())
    for t in range(last + 1, len(movie)):  # after the division: daughters only, one per side
        assert set(np.unique(labels[t])) <= {0, *daughters}
        for d in daughters:
            assert (labels[t] == d).any()
        assert (labels[t, :, :, :32] == daughters[0]).any() != (
            labels[t, :, :, :32] == daughters[1]
        ).any()
    plain, none = segment_movie(
        movie, click, axes="TZYX", model=micro, divisions=False, return_lineage=True
    )
    assert none == {} and set(np.unique(plain)) == {0, 1}  # one id per cell without divisions
    # divisions are on by default for 3-D + time
    default, found = segment_movie(movie, click, axes="TZYX", model=micro, return_lineage=True)
    assert found == lineage and np.array_equal(default, labels)


def test_cli_segment_4d_divisions_write_parents_to_the_ctc_folder(tmp_path, micro, monkeypatch):
    ctc_metrics = pytest.importorskip("ctc_metrics")
    movie, clicks = _npy_inputs(tmp_path, monkeypatch, micro, "dividing.npy", _dividing_movie(),
                                "frame,z,y,x,obj_id\n0,3,32,32,1\n")
    ctc = tmp_path / "01_RES"
    common = ["segment", str(movie), "--axes", "TZYX", "--prompts", str(clicks)]
    rc = cli.main([*common, "--divisions", "--out", str(tmp_path / "l.tif"), "--ctc", str(ctc)])
    assert rc == 0
    rows = [list(map(int, r.split())) for r in (ctc / "res_track.txt").read_text().splitlines()]
    mother = [r for r in rows if r[0] == 1]
    daughters = [r for r in rows if r[3] == 1]
    assert len(mother) == 1 and mother[0][3] == 0 and len(daughters) == 2
    assert all(d[1] == mother[0][2] + 1 for d in daughters)  # born the timepoint after
    assert int(ctc_metrics.validate_sequence(str(ctc), threads=1)["Valid"]) == 1
    # a z-stack has no time to divide in
    np.save(movie, _dividing_movie()[0])
    clicks.write_text("z,y,x,obj_id\n3,32,32,1\n")
    zyx = ["segment", str(movie), "--axes", "ZYX", "--prompts", str(clicks), "--divisions"]
    assert cli.main([*zyx, "--out", str(tmp_path / "z.tif")]) != 0


def test_fit_masks_switch_keeps_the_models_masks(micro, tmp_path, monkeypatch, capsys):
    """The fit only removes pixels: ``fit_masks=False`` (``--no-fit``) keeps the bundled
    model's wider masks of small nuclei; on a movie without a z axis the default ("auto")
    only removes pixels from ``fit_masks=False``'s masks, which ``--no-fit`` gives."""
    from napari_sam2.io.tiff import load_labels_tiff
    from napari_sam2.train.zstack import make_zstack

    stack, nuclei = make_zstack((16, 64, 64), count=1, radius=(8.0, 10.0), seed=5)
    zc, yc, xc = (int(round(v)) for v in nuclei[0].centre)
    click = [{"z": zc, "y": yc, "x": xc, "obj_id": 1}]
    fitted = segment_movie(stack.image, click, axes="ZYX", model=micro)
    raw = segment_movie(stack.image, click, axes="ZYX", model=micro, fit_masks=False)
    assert np.count_nonzero(fitted) < 0.9 * np.count_nonzero(raw)
    assert not (fitted.astype(bool) & ~raw.astype(bool)).any()  # nothing added
    movie, clicks = _npy_inputs(tmp_path, monkeypatch, micro, "stack.npy", stack.image,
                                f"z,y,x,obj_id\n{zc},{yc},{xc},1\n")
    out = tmp_path / "raw.tif"
    args = ["segment", str(movie), "--axes", "ZYX", "--prompts", str(clicks), "-q"]
    assert cli.main([*args, "--no-fit", "--out", str(out)]) == 0
    np.testing.assert_array_equal(load_labels_tiff(out), raw)
    flat_default = segment_movie(stack.image[:3], [(0, yc, xc, 1)], axes="TYX", model=micro)
    flat_off = segment_movie(stack.image[:3], [(0, yc, xc, 1)], axes="TYX", model=micro,
                             fit_masks=False)
    assert not (flat_default.astype(bool) & ~flat_off.astype(bool)).any()  # "auto" only cuts
    flat, flat_clicks = _npy_inputs(tmp_path, monkeypatch, micro, "flat.npy", stack.image[:3],
                                    f"frame,y,x,obj_id\n0,{yc},{xc},1\n")
    flat_out = tmp_path / "flat.tif"
    assert cli.main(["segment", str(flat), "--axes", "TYX", "--prompts", str(flat_clicks),
                     "--no-fit", "--out", str(flat_out), "-q"]) == 0
    np.testing.assert_array_equal(load_labels_tiff(flat_out), flat_off)
