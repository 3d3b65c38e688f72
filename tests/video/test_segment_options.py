"""segment_movie's options: small frozen groups, every value checked and every combination that
cannot work refused when the options are built (before a model is loaded or a frame read)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading

import numpy as np
import pytest

from napari_sam2.pipeline import segment, segment_movie
from napari_sam2.video.lineage import DivisionSettings
from napari_sam2.video.segment_options import (
    ModelOptions,
    MovieOptions,
    OutputOptions,
    RegionOptions,
    SeedOptions,
    Segmentation,
    SegmentOptions,
    TrackOptions,
)


def test_keywords_land_in_their_groups_and_groups_are_frozen():
    o = SegmentOptions.from_keywords(
        model="micro", device="cpu", axes="TYX", seed_frame=2, seed_labels="s.tif",
        tile=64, tile_margin=8, direction="forward", progress="tqdm",
    )
    assert o.model == ModelOptions("micro", "cpu")
    assert o.movie.axes == "TYX" and o.seeds.seed_frame == 2 and o.seeds.seed_labels == "s.tif"
    assert (o.region.tile, o.region.tile_margin) == (64, 8)
    assert o.track.direction == "forward" and o.output.progress == "tqdm"
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.region.tile = 32  # type: ignore[misc]
    # every old keyword of segment_movie has one group
    assert set(SegmentOptions.keywords()) == {
        "model", "device", "precision", "axes", "channel", "contrast_limits", "allow_partial",
        "boxes", "seed_labels", "seed_frame", "find_cells", "find_options", "zoom",
        "cell_diameter", "roi", "tile", "tile_margin", "settings", "direction", "divisions",
        "fit_masks", "out", "labels_path", "progress", "cancel",
    }
    # keywords on top of a base keep the base's other values
    again = SegmentOptions.from_keywords(o, direction="both")
    assert again.track.direction == "both" and again.region.tile == 64


def test_unknown_keyword_names_the_options():
    with pytest.raises(TypeError, match="unknown option.*tiles.*options are.*tile_margin"):
        SegmentOptions.from_keywords(tiles=3)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: ModelOptions(device="tpu"), "device must be one of"),
        (lambda: ModelOptions(precision="fp16"), "precision must be 'fp32' or 'bf16'"),
        (lambda: MovieOptions(axes="T-Y-X"), "axes must be letters"),
        (lambda: MovieOptions(channel=[0, 1, 2, 3]), "channel takes 1 to 3"),
        (lambda: MovieOptions(channel=-1), "channel must be a whole number >= 0"),
        (lambda: MovieOptions(contrast_limits=(5, 5)), "lo < hi"),
        (lambda: SeedOptions(seed_frame=-1), "seed_frame must be a whole number"),
        (lambda: SeedOptions(find_cells=1.5), "find_cells"),
        (lambda: SeedOptions(find_options={"points_per_side": 8}), "without find_cells"),
        (lambda: RegionOptions(zoom="on"), "zoom must be 'auto' or 'off'"),
        (lambda: RegionOptions(cell_diameter=0), "cell_diameter must be > 0"),
        (lambda: RegionOptions(roi=(0, 0, 10)), r"roi must be \(y0, x0, y1, x1\)"),
        (lambda: RegionOptions(roi=(10, 0, 5, 8)), "0 <= y0 < y1"),
        (lambda: RegionOptions(tile=0), "tile must be a whole number >= 1"),
        (lambda: RegionOptions(tile_margin=-2), "tile_margin must be"),
        (lambda: RegionOptions(tile=32, roi=(0, 0, 8, 8)), "tile cannot be combined with roi"),
        (lambda: TrackOptions(direction="up"), "direction must be"),
        (lambda: TrackOptions(divisions=True, direction="backward"), "runs forward in time"),
        (lambda: OutputOptions(out=np.zeros((1, 2, 2), np.uint16), labels_path="l.tif"),
         "give one of them"),
        (lambda: OutputOptions(out=np.zeros((1, 2, 2), np.float32)), "integer array"),
        (lambda: OutputOptions(progress="bar"), "progress must be None, 'tqdm'"),
        (lambda: OutputOptions(cancel=True), "cancel must be a threading.Event"),
    ],
)
def test_each_group_refuses_bad_values(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize(
    ("keywords", "match"),
    [
        ({"tile": 32, "find_cells": 0}, "tile cannot be combined with find_cells"),
        ({"tile": 32, "divisions": True}, "tile cannot be combined with divisions"),
        ({"axes": "ZYX", "seed_labels": np.ones((4, 4), np.uint8)}, "seed_labels is not available"),
        ({"axes": "ZYX", "divisions": True}, "divisions is not available for 3-D"),
        ({"axes": "TZYX", "divisions": DivisionSettings()}, "3-D cells take divisions=True"),
        ({"axes": "CZYX", "roi": (0, 0, 4, 4)}, "roi is not available for 3-D"),
    ],
)
def test_combinations_are_refused_before_any_work(keywords, match):
    with pytest.raises(ValueError, match=match):
        SegmentOptions.from_keywords(**keywords)
    # segment_movie refuses them before it opens the movie or loads the model: neither exists
    with pytest.raises(ValueError, match=match):
        segment_movie("no-such-movie.tif", [(0, 1, 1, 1)], model="no-such-model", **keywords)


def test_divisions_are_accepted_on_3d_with_time():
    o = SegmentOptions.from_keywords(axes="TZYX", divisions=True)
    assert o.track.tracks_divisions
    assert "divisions" not in dict(o.options_without_3d())
    assert "divisions" in dict(o.options_without_3d("ZYX"))


def test_division_settings_are_checked_up_front():
    from napari_sam2.video.lineage import DivisionSettings

    with pytest.raises(ValueError, match="min_frames"):
        TrackOptions(divisions=DivisionSettings(min_frames=0))
    assert TrackOptions(divisions=False).tracks_divisions is False


def test_output_cancelled_follows_the_event():
    ev = threading.Event()
    o = OutputOptions(cancel=ev)
    assert not o.cancelled
    ev.set()
    assert o.cancelled and not OutputOptions().cancelled


def test_options_import_no_torch():
    code = (
        "import sys\n"
        "import napari_sam2.video.segment_options\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_segment_returns_one_type_and_segment_movie_keeps_its_forms():
    from napari_sam2.model.config import get_config
    from napari_sam2.model.sam2 import SAM2Model

    net = SAM2Model(get_config("test_tiny_256")).eval()
    movie = np.zeros((3, 32, 32), np.float32)
    movie[:, 10:20, 10:20] = 1.0
    prompts = [(0, 15, 15, 1)]
    opts = SegmentOptions(ModelOptions(net), track=TrackOptions(direction="forward"))
    result = segment(movie, prompts, opts)
    assert isinstance(result, Segmentation) and result.lineage == {}
    assert result.labels.shape == (3, 32, 32) and result.labels.dtype == np.uint16
    plain = segment_movie(movie, prompts, options=opts)
    np.testing.assert_array_equal(plain, result.labels)
    labels, lineage = segment_movie(movie, prompts, model=net, direction="forward",
                                    return_lineage=True)
    np.testing.assert_array_equal(labels, result.labels)
    assert lineage == {}
