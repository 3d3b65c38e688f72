"""Prompt CSV files: napari's Points-layer CSV, the plain format, boxes, and error messages."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2.io.prompt_csv import (
    PromptFileError,
    as_box_prompts,
    as_point_prompts,
    read_box_prompts,
    read_point_prompts,
    write_box_prompts,
    write_point_prompts,
)
from napari_sam2.video.prompts import BoxPrompt, PointPrompt


def _write(path, text: str):
    path.write_text(text)
    return path


def _key(p: PointPrompt) -> tuple:
    return (p.frame, p.y, p.x, p.obj_id, p.positive)


def save_with_napari(path, data: np.ndarray, features: dict | None) -> None:
    """Save a Points layer with napari's own CSV writer (the npe2 builtins plugin)."""
    napari_layers = pytest.importorskip("napari.layers")
    layer = napari_layers.Points(data, features=features, ndim=data.shape[1])
    written = []
    try:
        from napari.plugins import _initialize_plugins

        _initialize_plugins()
        written = layer.save(str(path))
    except Exception:  # noqa: BLE001 - plugin discovery may fail; use the builtins writer
        written = []
    if not written:
        from napari_builtins.io._write import napari_write_points

        data_, meta, _ = layer.as_layer_data_tuple()
        napari_write_points(str(path), data_, meta)
    assert path.exists()


def test_napari_points_csv_as_written_by_napari(tmp_path):
    path = tmp_path / "points.csv"
    data = np.array([[0, 10.5, 20.0], [3, 30.0, 40.25], [3, 31.0, 41.0]])
    save_with_napari(path, data, {"obj_id": [1, 2, 2], "positive": [True, True, False]})
    header = path.read_text().splitlines()[0]
    assert header == "index,axis-0,axis-1,axis-2,obj_id,positive"
    got = read_point_prompts(path)
    assert [_key(p) for p in got] == [
        (0, 10.5, 20.0, 1, True),
        (3, 30.0, 40.25, 2, True),
        (3, 31.0, 41.0, 2, False),
    ]
    assert got[1].source == "points.csv, line 3"


def test_napari_csv_variants(tmp_path):
    # 2-D layer: axis-0 = y, axis-1 = x, all on frame 0; no obj_id -> one object per point
    two_d = _write(tmp_path / "a.csv", "index,axis-0,axis-1\n0.0,5.0,6.0\n1.0,7.0,8.0\n")
    assert [_key(p) for p in read_point_prompts(two_d)] == [(0, 5, 6, 1, True), (0, 7, 8, 2, True)]
    # floats everywhere (napari's numeric table) and an extra property column
    floats = _write(
        tmp_path / "b.csv",
        "index,axis-0,axis-1,axis-2,obj_id,positive,note\n0.0,2.0,5.0,6.0,4.0,0.0,x\n",
    )
    assert [_key(p) for p in read_point_prompts(floats)] == [(2, 5, 6, 4, False)]
    # 4-D layer (3-D + time): axis-0..3 are t, z, y, x
    four_d = _write(tmp_path / "c.csv", "index,axis-0,axis-1,axis-2,axis-3\n0,3,7,1,2\n")
    (p,) = read_point_prompts(four_d)
    assert (p.frame, p.z, p.y, p.x) == (3, 7, 1.0, 2.0)
    five_d = _write(tmp_path / "d.csv", "index,axis-0,axis-1,axis-2,axis-3,axis-4\n0,0,0,0,1,1\n")
    with pytest.raises(PromptFileError, match="axis-0..axis-3"):
        read_point_prompts(five_d)


def test_plain_csv_forms(tmp_path):
    with_header = _write(
        tmp_path / "h.csv",
        "# clicks\nobj_id,x,y,t,positive,comment\n1,20,10,0,1,first\n\n2,40,30,5,false,\n",
    )
    assert [_key(p) for p in read_point_prompts(with_header)] == [
        (0, 10, 20, 1, True),
        (5, 30, 40, 2, False),
    ]
    no_header = _write(tmp_path / "n.csv", "0,10,20,1\n1,11.5,21,1,0\n")
    assert [_key(p) for p in read_point_prompts(no_header)] == [
        (0, 10, 20, 1, True),
        (1, 11.5, 21, 1, False),
    ]


@pytest.mark.parametrize(
    "text, line, match",
    [
        ("frame,y,x,obj_id,positive\n0,10,10,1,1\n0,abc,10,2,1\n", 3, "'abc' is not a number"),
        ("frame,y,x,obj_id\n0,10,10,0\n", 2, "obj_id '0' must be >= 1"),
        ("frame,y,x,obj_id\n1.5,10,10,1\n", 2, "not a whole number"),
        ("frame,y,x,obj_id\n-1,10,10,1\n", 2, "frame '-1' must be >= 0"),
        ("frame,y,x,obj_id\n0,10,,1\n", 2, "missing value for 'x'"),
        ("frame,y,x,obj_id,positive\n0,1,1,1,maybe\n", 2, "positive 'maybe'"),
        ("0,1,1,1\n0,1,1\n", 2, "expected 4 or 5 values"),
        ("frame,y,x,obj_id\n0,nan,1,1\n", 2, "finite"),
        ("index,axis-0,axis-1,axis-2\n0,0,5\n", 2, "expected 4 values"),
        ("frame,y,obj_id\n0,1,1\n", 1, "lacks column"),
    ],
)
def test_malformed_rows_name_the_line(tmp_path, text, line, match):
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(PromptFileError, match=match) as info:
        read_point_prompts(path)
    assert info.value.line == line
    assert str(info.value).startswith(f"bad.csv, line {line}: ")
    assert "\n" not in str(info.value)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(PromptFileError, match="no prompts"):
        read_point_prompts(_write(tmp_path / "e.csv", "# nothing\n\n"))
    with pytest.raises(PromptFileError, match="only a header"):
        read_point_prompts(_write(tmp_path / "h.csv", "frame,y,x,obj_id\n"))
    with pytest.raises(PromptFileError, match="no such file"):
        read_point_prompts(tmp_path / "missing.csv")


def test_boxes(tmp_path):
    with_header = _write(tmp_path / "b.csv", "obj_id,frame,y0,x0,y1,x1\n3,1,5,6,20,30\n")
    assert read_box_prompts(with_header) == [BoxPrompt(1, 5, 6, 20, 30, 3, "b.csv, line 2")]
    plain = _write(tmp_path / "p.csv", "0,1,2,3,4,7\n")
    assert read_box_prompts(plain)[0].obj_id == 7
    empty_box = _write(tmp_path / "x.csv", "frame,y0,x0,y1,x1,obj_id\n0,1,2,3,4,1\n0,5,5,5,9,2\n")
    with pytest.raises(PromptFileError, match="line 3: empty box"):
        read_box_prompts(empty_box)


def test_in_memory_forms():
    expected = [(0, 10.0, 20.0, 1, True), (2, 5.0, 6.0, 2, False)]
    dicts = [
        {"frame": 0, "y": 10, "x": 20, "obj_id": 1},
        {"t": 2, "y": 5, "x": 6, "obj_id": 2, "positive": False},
    ]
    tuples = [(0, 10, 20, 1), (2, 5, 6, 2, 0)]
    array = np.array([[0, 10, 20, 1, 1], [2, 5, 6, 2, 0]], dtype=float)
    for form in (dicts, tuples, array):
        assert [_key(p) for p in as_point_prompts(form)] == expected
    assert as_point_prompts(None) == []
    with pytest.raises(ValueError, match="prompt 1: missing key"):
        as_point_prompts([{"frame": 0, "y": 1, "x": 1, "obj_id": 1}, {"y": 1, "x": 1}])
    boxes = as_box_prompts(
        [(0, 1, 2, 10, 20, 5), {"frame": 1, "y0": 0, "x0": 0, "y1": 4, "x1": 4, "obj_id": 6}]
    )
    assert [(b.frame, b.obj_id) for b in boxes] == [(0, 5), (1, 6)]
    with pytest.raises(ValueError, match="box 0: empty box"):
        as_box_prompts([(0, 5, 5, 5, 9, 1)])


@pytest.mark.parametrize("style", ["plain", "napari"])
def test_write_read_roundtrip(tmp_path, style):
    prompts = [(0, 10.25, 20, 1, True), (4, 5, 6.5, 2, False)]
    path = write_point_prompts(tmp_path / f"{style}.csv", prompts, style=style)
    assert [_key(p) for p in read_point_prompts(path)] == [
        (0, 10.25, 20.0, 1, True),
        (4, 5.0, 6.5, 2, False),
    ]
    boxes = write_box_prompts(tmp_path / "boxes.csv", [(1, 2, 3, 40, 50.5, 9)])
    assert [(b.frame, b.y0, b.x1, b.obj_id) for b in read_box_prompts(boxes)] == [(1, 2, 50.5, 9)]


# ----------------------------------------------------------------------------- napari Shapes CSV


def save_shapes_with_napari(path, rects: list[np.ndarray], shape_type="rectangle") -> None:
    """Save a Shapes layer with napari's own CSV writer (the npe2 builtins plugin)."""
    napari_layers = pytest.importorskip("napari.layers")
    ndim = rects[0].shape[1]
    layer = napari_layers.Shapes(rects, shape_type=shape_type, ndim=ndim)
    written = []
    try:
        from napari.plugins import _initialize_plugins

        _initialize_plugins()
        written = layer.save(str(path))
    except Exception:  # noqa: BLE001 - plugin discovery may fail; use the builtins writer
        written = []
    if not written:
        from napari_builtins.io._write import napari_write_shapes

        data_, meta, _ = layer.as_layer_data_tuple()
        napari_write_shapes(str(path), data_, meta)
    assert path.exists()


def _rect(t: float | None, y0: float, x0: float, y1: float, x1: float) -> np.ndarray:
    """The 4 corners of a rectangle as napari stores them ((t,) y, x per corner)."""
    corners = np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], dtype=float)
    if t is None:
        return corners
    return np.concatenate([np.full((4, 1), t), corners], axis=1)


def test_napari_shapes_csv_as_written_by_napari(tmp_path):
    path = tmp_path / "boxes.csv"
    save_shapes_with_napari(path, [_rect(0, 10, 20, 30, 40), _rect(2, 5.5, 6, 25, 16)])
    lines = path.read_text().splitlines()
    assert lines[0] == "index,shape-type,vertex-index,axis-0,axis-1,axis-2"
    assert len(lines) == 1 + 2 * 4 and lines[1].startswith("0,rectangle,0,")
    boxes = read_box_prompts(path, first_id=5)  # no obj_id column: ids 5, 6 in shape order
    assert boxes == [
        BoxPrompt(0, 10, 20, 30, 40, 5, "boxes.csv, line 2"),
        BoxPrompt(2, 5.5, 6, 25, 16, 6, "boxes.csv, line 6"),
    ]
    assert [b.obj_id for b in read_box_prompts(path)] == [1, 2]  # default first_id
    assert [b.obj_id for b in as_box_prompts(path)] == [1, 2]
    # a 2-D Shapes layer puts the boxes on frame 0
    flat = tmp_path / "flat.csv"
    save_shapes_with_napari(flat, [_rect(None, 1, 2, 8, 9)])
    assert flat.read_text().splitlines()[0] == "index,shape-type,vertex-index,axis-0,axis-1"
    assert read_box_prompts(flat) == [BoxPrompt(0, 1, 2, 8, 9, 1, "flat.csv, line 2")]
    # clicks and boxes are told apart: a Shapes CSV is no click file
    with pytest.raises(PromptFileError, match="line 1: this is a napari Shapes CSV"):
        read_point_prompts(path)


def test_napari_shapes_csv_rejects_other_shapes_with_line(tmp_path):
    path = tmp_path / "mixed.csv"
    triangle = np.array([[1, 1, 1], [1, 5, 5], [1, 9, 1]], dtype=float)
    save_shapes_with_napari(path, [_rect(0, 10, 20, 30, 40), triangle], ["rectangle", "polygon"])
    assert path.read_text().splitlines()[5].startswith("1,polygon,0,")
    with pytest.raises(PromptFileError) as info:
        read_box_prompts(path)
    assert info.value.line == 6
    assert str(info.value) == (
        "mixed.csv, line 6: shape 1 has shape-type 'polygon'; only rectangles can be boxes"
    )


def test_shapes_csv_obj_id_column_and_rotated_rectangle(tmp_path):
    head = "index,shape-type,vertex-index,axis-0,axis-1,axis-2,obj_id\n"
    rows = [
        f"{i},rectangle,{k},{t},{y},{x},{obj}"
        for i, (t, corners, obj) in enumerate(
            [
                (3, [(10, 20), (10, 40), (30, 40), (30, 20)], 7),
                (1, [(0, 5), (5, 10), (10, 5), (5, 0)], 2),  # rotated 45 degrees
            ]
        )
        for k, (y, x) in enumerate(corners)
    ]
    path = _write(tmp_path / "s.csv", head + "\n".join(rows) + "\n")
    got = read_box_prompts(path, first_id=50)  # ignored: the file names its objects
    assert [(b.frame, b.y0, b.x0, b.y1, b.x1, b.obj_id) for b in got] == [
        (3, 10, 20, 30, 40, 7),
        (1, 0, 0, 10, 10, 2),
    ]


@pytest.mark.parametrize(
    "body, line, match",
    [
        ("0,rectangle,0,0,1,1\n0,rectangle,1,0,1,5\n0,rectangle,2,0,5,5\n", 2, "has 3 corner"),
        (
            "0,rectangle,0,0,1,1\n0,rectangle,1,0,1,5\n0,rectangle,2,1,5,5\n0,rectangle,3,0,5,1\n",
            2,
            r"lie on frames \[0, 1\]",
        ),
        (
            "0,rectangle,0,0,1,1\n0,rectangle,1,0,1,1\n0,rectangle,2,0,5,1\n0,rectangle,3,0,5,1\n",
            2,
            "rectangle 0 is empty",
        ),
        ("0,rectangle,0,0,1,1\n0,rectangle,1,0,one,5\n", 3, "y \\(axis-1\\) 'one' is not a number"),
        ("0,rectangle,0,0.5,1,1\n", 2, "frame \\(axis-0\\) '0.5' is not a whole number"),
        ("0,ellipse,0,0,1,1\n", 2, "shape 0 has shape-type 'ellipse'; only"),
        ("0,rectangle,0,0\n", 2, "expected 6 values like the header"),
    ],
)
def test_shapes_csv_bad_rows_name_the_line(tmp_path, body, line, match):
    head = "index,shape-type,vertex-index,axis-0,axis-1,axis-2\n"
    path = _write(tmp_path / "bad.csv", head + body)
    with pytest.raises(PromptFileError, match=match) as info:
        read_box_prompts(path)
    assert info.value.line == line
    assert str(info.value).startswith(f"bad.csv, line {line}: ")


def test_z_column_dicts_and_round_trip(tmp_path):
    from napari_sam2.io.prompt_csv import as_box_prompts, as_point_prompts, write_point_prompts

    plain = _write(tmp_path / "z.csv", "z,y,x,obj_id\n12,40,60,1\n")
    (p,) = read_point_prompts(plain)
    assert (p.frame, p.z, p.y, p.x, p.obj_id) == (0, 12, 40.0, 60.0, 1)
    (q,) = as_point_prompts([{"frame": 2, "z": 5, "y": 1, "x": 2, "obj_id": 3}])
    assert (q.frame, q.z) == (2, 5)
    (b,) = as_box_prompts([{"z": 4, "y0": 1, "x0": 2, "y1": 5, "x1": 6, "obj_id": 1}])
    assert (b.frame, b.z) == (0, 4)
    for style in ("plain", "napari"):
        out = write_point_prompts(tmp_path / f"{style}.csv", [q], style=style)
        (r,) = read_point_prompts(out)
        assert (r.frame, r.z, r.y, r.x, r.obj_id) == (2, 5, 1.0, 2.0, 3)
