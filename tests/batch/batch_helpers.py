"""Small movies and a manifest for the batch tests (48 x 64 px, a few frames, bright blobs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

H, W = 48, 64


def blob_movie(frames: int, seed: int, channels: int = 0) -> np.ndarray:
    """(T, H, W) uint16 (or (T, C, H, W) with the blob in channel 1) with two bright blobs, the
    first drifting 1 px per frame in x."""
    yy, xx = np.mgrid[:H, :W]
    rng = np.random.default_rng(seed)
    movie = rng.normal(300, 30, (frames, H, W))
    for k in range(frames):
        movie[k][(yy - 18) ** 2 + (xx - 14 - (k % 20) - seed) ** 2 < 40] += 2000
        movie[k][(yy - 34) ** 2 + (xx - 46) ** 2 < 30] += 1500
    movie = np.clip(movie, 0, 65535).astype(np.uint16)
    if channels:
        noise = rng.normal(300, 30, movie.shape).astype(np.uint16)
        movie = np.stack([noise, movie] + [noise] * (channels - 2), axis=1)
    return movie


def write_movie(path: Path, movie: np.ndarray) -> Path:
    axes = "TYX" if movie.ndim == 3 else "TCYX"
    tifffile.imwrite(path, movie, imagej=True, metadata={"axes": axes})
    return path


def clicks_csv(path: Path, seed: int) -> Path:
    path.write_text(f"frame,y,x,obj_id,positive\n0,18,{14 + seed},1,1\n0,34,46,2,1\n")
    return path


def make_batch(root: Path, frames: int = 4) -> dict:
    """Six movies (one corrupt) and a manifest using a glob, ``{stem}``, seed labels, boxes,
    axes and channel. Returns {"manifest": path, "args": {name: segment_movie kwargs},
    "corrupt": name}."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "plate").mkdir(exist_ok=True)
    args: dict[str, dict] = {}
    for i in range(3):  # the glob row
        movie = write_movie(root / "plate" / f"w{i}.tif", blob_movie(frames, i))
        clicks = clicks_csv(root / "plate" / f"w{i}_clicks.csv", i)
        args[f"w{i}"] = {"movie": str(movie), "prompts": str(clicks)}
    seed = np.zeros((H, W), np.uint16)
    seed[14:23, 10:20] = 3
    tifffile.imwrite(root / "seed.tif", seed)
    write_movie(root / "seeded.tif", blob_movie(frames, 0))
    args["seeded"] = {
        "movie": str(root / "seeded.tif"),
        "seed_labels": str(root / "seed.tif"),
        "seed_frame": 0,
    }
    (root / "boxes.csv").write_text("frame,y0,x0,y1,x1,obj_id\n0,28,39,41,54,5\n")
    write_movie(root / "twochan.tif", blob_movie(frames, 1, channels=2))
    args["twochan"] = {
        "movie": str(root / "twochan.tif"),
        "boxes": str(root / "boxes.csv"),
        "axes": "TCYX",
        "channel": 1,
    }
    (root / "corrupt.tif").write_bytes(b"II*\x00" + bytes(range(200)))
    clicks_csv(root / "corrupt_clicks.csv", 0)
    manifest = root / "manifest.csv"
    manifest.write_text(
        "movie,prompts,seed_labels,seed_frame,boxes,axes,channel\n"
        "plate/w*.tif,plate/{stem}_clicks.csv,,,,,\n"
        "seeded.tif,,seed.tif,0,,,\n"
        "twochan.tif,,,,boxes.csv,TCYX,1\n"
        "corrupt.tif,corrupt_clicks.csv,,,,,\n"
    )
    return {"manifest": manifest, "args": args, "corrupt": "corrupt"}


def hidden_entries(out: Path) -> list[str]:
    """Names of hidden entries in an output folder (staging folders of unfinished movies)."""
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))
