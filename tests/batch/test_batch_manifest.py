"""Manifest CSV -> jobs: columns, relative paths, globs with {stem}, and the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_sam2.batch.manifest import Job, ManifestError, as_jobs, movie_stem, read_manifest


def _files(root: Path, *names: str) -> None:
    for n in names:
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


def test_rows_globs_and_relative_paths(tmp_path):
    _files(tmp_path, "a/A01.tif", "a/A02.tif", "b/B.ome.tif")
    rows = (
        "a/*.tif,a/{stem}_clicks.csv,,,,,,,,\n"
        "# a comment row\n"
        "\n"
        f"{tmp_path / 'b' / 'B.ome.tif'},,seeds/B.tif,3,,TCYX,0;2,forward,yes,\n"
        "a/A01.tif,,,,5,,1,,,NAME\n"
    )
    header = "Movie,prompts,seed_labels,seed_frame,find_cells,axes,channel,direction,divisions,"
    header += "name\n"
    (tmp_path / "m.csv").write_text(header + rows.replace("NAME", ""))
    with pytest.raises(ManifestError, match="A01.tif is listed twice: both write to the output"):
        read_manifest(tmp_path / "m.csv")
    (tmp_path / "m.csv").write_text(header + rows.replace("NAME", "again"))
    jobs = read_manifest(tmp_path / "m.csv")
    assert [j.name for j in jobs] == ["A01", "A02", "B", "again"]
    a1, a2, b, again = jobs
    assert a1.movie == str(tmp_path / "a" / "A01.tif")
    assert a2.prompts == str(tmp_path / "a" / "A02_clicks.csv")
    assert (a1.direction, a1.divisions, a1.channel, a1.axes) == ("both", False, None, None)
    assert b.seed_labels == str(tmp_path / "seeds" / "B.tif") and b.seed_frame == 3
    assert (b.axes, b.channel, b.direction, b.divisions) == ("TCYX", (0, 2), "forward", True)
    assert again.find_cells == 5 and again.channel == 1 and again.prompts is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("film,prompts\nx.tif,c.csv\n", "no 'movie' column"),
        ("movie,prompt\nx.tif,c.csv\n", "unknown column.*'prompt'.*the columns are movie"),
        ("movie,prompts\nnone/*.tif,c.csv\n", "line 2: 'none/\\*.tif' matches no file"),
        ("movie,prompts\nx.tif,\n", "line 2: .*no prompts: give prompts, boxes"),
        ("movie,find_cells\nx.tif,first\n", "line 2: find_cells 'first' is not a whole number"),
        ("movie,find_cells,channel\nx.tif,0,red\n", "channel 'red'"),
        ("movie,find_cells,direction\nx.tif,0,up\n", "direction 'up'"),
        ("movie,find_cells,divisions\nx.tif,0,maybe\n", "divisions 'maybe': write yes or no"),
        ("movie,find_cells\nx.tif,0,extra\n", "3 cells but 2 columns"),
        ("movie,find_cells,name\n*.tif,0,n\n", "a glob row cannot have a name"),
        ("movie,find_cells,name\nx.tif,0,../up\n", "cannot be an output folder name"),
        ("movie\n", "lists no movie"),
    ],
)
def test_bad_manifests_name_the_problem(tmp_path, text, message):
    _files(tmp_path, "x.tif")
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(ManifestError, match=message):
        read_manifest(tmp_path / "m.csv")


def test_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "nope.csv")


def test_as_jobs_accepts_jobs_dicts_and_paths(tmp_path):
    job = Job(movie="x/a.tif", find_cells=0)
    jobs = as_jobs([job, {"movie": tmp_path / "b.zarr", "prompts": "b.csv"}])
    assert [j.name for j in jobs] == ["a", "b"] and jobs[1].movie == str(tmp_path / "b.zarr")
    assert as_jobs(job) == [job]
    with pytest.raises(ManifestError, match="unknown job field.*promts"):
        as_jobs({"movie": "a.tif", "promts": "a.csv"})
    with pytest.raises(TypeError, match="a job must be a Job"):
        as_jobs([3])
    with pytest.raises(ManifestError, match="both write"):
        as_jobs([job, Job(movie="y/a.tif", find_cells=0)])


def test_movie_stem():
    assert movie_stem("p/A01.ome.tif") == "A01"
    assert movie_stem("p/A01.tif") == "A01"
    assert movie_stem("p/plate.zarr/") == "plate"
