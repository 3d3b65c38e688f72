"""The tracking controller without its dock widget: a script drives its parts (model, objects,
prompts, propagation, region, exports) directly, and they share one state."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def test_controller_parts_without_the_widget(fresh_viewer, small_movie, tiny_model, tmp_path):
    import tifffile

    from napari_sam2._napari.controller import TrackingController

    viewer = fresh_viewer
    viewer.add_image(small_movie, name="movie")
    c = TrackingController(viewer, bind_keys=False)
    try:
        c.set_image_layer("movie")
        c.model.set_model(tiny_model)
        assert c.model.loaded is tiny_model and c.model.name == tiny_model.config.name

        first = c.objects.add()
        second = c.objects.add()
        assert (first, second) == (1, 2) and c.objects.current == 2
        mask = c.prompts.add_point((0, 40, 40), obj_id=first, wait=True)
        assert mask.shape == small_movie.shape[1:] and mask.any()
        c.prompts.add_box(0, (70, 70, 100, 100), obj_id=second, wait=True)
        assert len(c.points_layer.data) == 1 and len(c.shapes_layer.data) == 1
        assert c.session.obj_ids == [1, 2]

        done = c.propagation.run("forward", start=0, last=3, wait=True)
        assert done == [0, 1, 2, 3]
        assert all((c.volume[t] == first).any() for t in done)
        assert {(t, o) for t in done for o in (1, 2)} <= set(c.scores)

        c.objects.remove(second, wait=True)  # its box goes, its labels go
        assert c.objects.ids == [1] and len(c.shapes_layer.data) == 0
        assert not (c.volume == second).any() and c.session.obj_ids == [1]

        c.region.set((0, 0, 64, 64), wait=True)  # the session is rebuilt in the region
        assert c.session.roi == (0, 0, 64, 64) and c.session.obj_ids == [1]

        path = c.exports.labels(tmp_path / "labels.tif")
        saved = tifffile.imread(path)
        assert saved.shape == small_movie.shape
        np.testing.assert_array_equal(saved, c.volume)
    finally:
        c.cancel()
        c.wait(timeout=60)
        c.close()
