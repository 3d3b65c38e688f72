"""Modules around the session use its public members only (objects, frames)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from napari_sam2 import VideoSession
from napari_sam2.video.division_propagation import _retire
from napari_sam2.video.frames import FrameSource

SRC = Path(__file__).resolve().parents[2] / "src" / "napari_sam2"


def _disk(h, w, cy, cx, r):
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r * r


def test_no_module_reaches_into_the_session_or_the_frame_source():
    private = re.compile(r"\b(session|sess|frames)\._[a-z]\w*")
    hits = [
        f"{p.relative_to(SRC)}: {m.group(0)}"
        for p in SRC.rglob("*.py")
        for m in private.finditer(p.read_text())
    ]
    assert hits == []


def test_retire_keeps_earlier_labels_and_the_last_frame(model, movie):
    s = VideoSession(model, movie)
    last = s.num_frames - 1
    for t in (0, 5, last):
        s.add_mask(t, 1, _disk(48, 64, 14 + t, 16 + t, 7))
    s.add_mask(2, 2, _disk(48, 64, 32, 46, 6))
    s.add_mask(last, 2, _disk(48, 64, 32, 46, 6))
    before = s.labels().copy()
    _retire(s, 1, s.num_frames)  # a division on the last frame: every label stays
    assert s.obj_ids == [2]
    np.testing.assert_array_equal(s.labels(), before)
    _retire(s, 2, 3)
    assert s.obj_ids == []
    assert (s.labels()[2] == 2).any() and not (s.labels()[3:] == 2).any()
    _retire(s, 1, 1)  # no longer an object: only its labels from frame 1 on go
    assert (s.labels()[0] == 1).any() and not (s.labels()[1:] == 1).any()


def test_model_frame_is_the_whole_frame_the_model_reads(movie):
    fs = FrameSource(movie, roi=(4, 8, 40, 56), prefetch=False)
    np.testing.assert_array_equal(fs.model_frame(3), movie[3])
    with pytest.raises(ValueError, match="out of range"):
        fs.model_frame(len(movie))
