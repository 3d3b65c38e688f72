"""The 3-D view of docs/3d.md: a synthetic z-stack segmented from one click per nucleus.

Run under a display (or Xvfb):
    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_3d.py

Writes ``docs/images/3d_view.png`` (napari's 3-D view: the stack as a volume, the labels as
surfaces) and prints the mean 3-D IoU of the shown result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "3d_view.png"


def main() -> None:
    import napari
    from napari_sam2 import load_model
    from napari_sam2.pipeline import segment_movie
    from napari_sam2.train.zstack import make_zstack

    stack, nuclei = make_zstack((32, 112, 112), count=5, radius=(10.0, 22.0), seed=4)
    prompts = []
    for n in nuclei:
        m = stack.labels == n.obj_id
        z = int(np.argmax(m.reshape(m.shape[0], -1).sum(1)))
        ys, xs = np.nonzero(m[z])
        k = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
        prompts.append({"z": z, "y": int(ys[k]), "x": int(xs[k]), "obj_id": n.obj_id})
    labels = segment_movie(stack.image, prompts, axes="ZYX", model=load_model("micro"))
    ious = []
    for n in nuclei:
        a, b = labels == n.obj_id, stack.labels == n.obj_id
        ious.append((a & b).sum() / (a | b).sum())
    print(f"{len(nuclei)} nuclei, mean 3-D IoU {np.mean(ious):.3f}")

    scale = (stack.voxel_size[0] / stack.voxel_size[1], 1.0, 1.0)  # anisotropic z
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True, title="napari-sam2 3-D")
    viewer.add_image(stack.image, name="z-stack", scale=scale, rendering="mip", opacity=0.6)
    viewer.add_labels(labels, name="SAM 2 labels", scale=scale)
    viewer.add_points(
        [(p["z"], p["y"], p["x"]) for p in prompts], name="clicks", scale=scale, size=4,
        face_color="yellow",
    )
    viewer.dims.ndisplay = 3
    viewer.reset_view()
    viewer.camera.angles = (15, -35, 80)
    for _ in range(5):
        QApplication.processEvents()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(OUT), canvas_only=True)
    viewer.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
