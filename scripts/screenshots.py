"""Make the screenshots of docs/usage.md: the "SAM 2 tracking" widget beside a tracked movie.

Run under a (virtual) display, e.g.:

    OMP_NUM_THREADS=2 QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \\
        python scripts/screenshots.py

Uses the bundled ``micro`` model when ``src/napari_sam2/weights/micro.pt`` exists; otherwise the
random-weight ``test_tiny_256`` model (masks are then meaningless blobs: re-run once micro is
trained). Writes PNGs into docs/images/.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"


def _settle(viewer, seconds: float = 0.5) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def _model():
    from napari_sam2 import load_model
    from napari_sam2._napari._model import bundled_model_installed

    if bundled_model_installed():
        return load_model("micro", device="auto"), "micro"
    print(
        "NOTE: micro.pt is not there yet: using the random test_tiny_256 model "
        "(re-run this script once micro is trained)"
    )
    model = load_model("test_tiny_256", device="cpu")
    model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.data.fill_(6.0)
    return model, "test_tiny_256"


def _seeds(n: int) -> list[tuple[float, float]]:
    """Centres (y, x) of ``n`` well-separated cells on frame 0 of the nuclei sample."""
    from napari_sam2._napari._sample_data import SAMPLE_CELLS, SAMPLE_FRAMES, SAMPLE_SHAPE
    from napari_sam2.train.synthetic import make_movie

    labels = make_movie(
        kind="nuclei", n_frames=SAMPLE_FRAMES, shape=SAMPLE_SHAPE, seed=2, **SAMPLE_CELLS["nuclei"]
    ).labels
    first, last = labels[0], labels[-1]
    out = []
    for i in np.unique(first):
        if i == 0 or not (last == i).any():  # cells that live through the movie
            continue
        ys, xs = np.nonzero(first == i)
        if len(ys) < 60:
            continue
        # the pixel of the cell farthest from its border, not the centroid (cells can be curved)
        from scipy import ndimage

        dist = ndimage.distance_transform_edt(first == i)
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        out.append((float(y), float(x)))
    rng = np.random.default_rng(0)
    rng.shuffle(out)
    return out[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--cells", type=int, default=6)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import napari
    from napari_sam2._napari import open_widget

    viewer = napari.Viewer(show=True, title="napari-sam2")
    viewer.window._qt_window.resize(1500, 950)
    viewer.open_sample("napari-sam2", "nuclei")
    widget = open_widget(viewer)
    model, name = _model()
    c = widget.controller
    c.model.set_model(model)
    c.wait()
    c.model.name = name
    widget.model_rows.refresh()
    _settle(viewer)
    viewer.reset_view()

    # 1) prompts: a click per cell on frame 0
    for y, x in _seeds(args.cells):
        c.objects.add()
        c.prompts.add_point((0, y, x), wait=True)
    c.set_current_frame(0)
    viewer.layers.selection.active = c.points_layer
    _settle(viewer, 1.0)
    viewer.screenshot(str(args.out / "prompts.png"), canvas_only=False)

    # 2) propagated through the movie
    t0 = time.perf_counter()
    c.propagation.run("forward", start=0, wait=True)
    print(f"propagated {c.num_frames} frames in {time.perf_counter() - t0:.1f} s ({name})")
    c.set_current_frame(c.num_frames * 2 // 3)
    c.exports.tracks_layer()
    viewer.layers.selection.active = c.labels_layer
    _settle(viewer, 1.0)
    viewer.screenshot(str(args.out / "propagated.png"), canvas_only=False)

    # 3) the memory-bank settings
    widget.memory_section.expand(animate=False)
    _settle(viewer, 1.0)
    widget.grab().save(str(args.out / "widget_memory.png"))
    print(f"screenshots written to {args.out}")
    viewer.close()


if __name__ == "__main__":
    main()
