"""Peak memory of following a 3-D cell through time: 20 vs 200 timepoints.

Each run is a fresh process: a synthetic (T, Z, Y, X) movie of one drifting nucleus (written to
a ``.npy`` file by the parent and opened memory-mapped, as a long movie on disk would be), one
click at t = 0, the bundled model,
:class:`~napari_sam2.video.volume_time.VolumeTimeSession` writing into a memory-mapped label
volume. The peak resident set size (:func:`peak_mib`) of each run is printed with the ratio.

Run: ``python benchmarks/bench_3d_memory.py [--frames 20 200] [--shape 8 64 64]
[--stored-memory-frames N] [--divisions]`` (``MemorySettings.stored_memory_frames`` of the
z-sessions: tracked-slice memories kept per object beyond those attention needs; default 32;
the sessions that follow a cell through time keep none; ``--divisions``: the session looks
for divisions at every timepoint, as ``segment_movie`` does by default on 3-D + time).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _models import cpu_name  # noqa: E402


def peak_mib() -> float:
    """Peak resident memory of this process in MiB: ``VmHWM`` (Linux), else ``ru_maxrss``.

    ``ru_maxrss`` of a child started by ``subprocess`` begins at the parent's resident size
    (it survives ``fork`` and ``exec``), so the parent's movie generation would count;
    ``VmHWM`` belongs to the process's own address space.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux


def write_movie(folder: Path, frames: int, shape: tuple[int, int, int]) -> dict:
    """Write the synthetic movie to ``folder/m.npy``; return the click (t, z, y, x) on its cell.

    Runs in the parent, so that the measured process does not hold (or keep the heap of) the
    movie's generation, nor the written pages of the file: it opens the movie from disk, as a
    long movie would be.
    """
    import numpy as np

    from napari_sam2.train.zstack import make_zstack_movie

    mv = make_zstack_movie(
        shape, frames=frames, count=1, radius=(9.0, 10.0), z_scale=0.3, divisions=0, seed=1
    )
    np.save(folder / "m.npy", mv.image)
    m = mv.labels[0] == 1
    z = int(np.argmax(m.reshape(m.shape[0], -1).sum(1)))
    ys, xs = np.nonzero(m[z])
    k = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
    return {"z": z, "y": int(ys[k]), "x": int(xs[k])}


def child(folder: Path, click: dict, stored: int | None, divisions: bool = False) -> dict:
    import numpy as np

    from napari_sam2 import load_model
    from napari_sam2.video.memory_settings import MemorySettings
    from napari_sam2.video.volume_time import VolumeTimeSession

    movie = np.load(folder / "m.npy", mmap_mode="r")
    frames = len(movie)
    out = np.lib.format.open_memmap(folder / "l.npy", "w+", np.uint16, movie.shape)
    model = load_model("micro", device="cpu")
    settings = MemorySettings(**({} if stored is None else {"stored_memory_frames": stored}))
    session = VolumeTimeSession(
        model, movie, axes="TZYX", out=out, settings=settings, divisions=divisions
    )
    session.add_points(0, click["z"], 1, [(click["y"], click["x"])], [1])
    t0 = time.perf_counter()
    done = sum(1 for _ in session.propagate("forward"))
    secs = time.perf_counter() - t0
    tracked = int(sum(bool((out[t] == 1).any()) for t in range(frames)))
    divided = len(set(session.lineage.values()))
    session.close()
    return {
        "frames": frames,
        "done": done,
        "tracked": tracked,
        "seconds": secs,
        "peak_mib": peak_mib(),
        "divisions": divided,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[20, 200])
    ap.add_argument("--shape", type=int, nargs=3, default=[10, 64, 64], metavar=("Z", "Y", "X"))
    ap.add_argument("--stored-memory-frames", type=int, default=None)
    ap.add_argument("--divisions", action="store_true", help="look for divisions")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # folder with m.npy
    ap.add_argument("--click", help=argparse.SUPPRESS)  # JSON (z, y, x)
    args = ap.parse_args(argv)
    if args.child:
        click = json.loads(args.click)
        print(json.dumps(child(Path(args.child), click, args.stored_memory_frames, args.divisions)))
        return 0
    stored = args.stored_memory_frames
    print(
        f"CPU: {cpu_name()}; movie (T, {', '.join(map(str, args.shape))}), 1 cell, micro, "
        f"stored_memory_frames {'default' if stored is None else stored}"
        + (", divisions on" if args.divisions else "")
    )
    rows = []
    for frames in args.frames:
        with tempfile.TemporaryDirectory() as tmp:
            click = write_movie(Path(tmp), frames, tuple(args.shape))
            out = subprocess.run(
                [sys.executable, __file__, "--child", tmp, "--click", json.dumps(click)]
                + ([] if stored is None else ["--stored-memory-frames", str(stored)])
                + (["--divisions"] if args.divisions else []),
                capture_output=True,
                text=True,
                check=True,
            )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"T = {frames:4d}: peak RSS {row['peak_mib']:7.1f} MiB, {row['seconds']:6.1f} s, "
            f"cell present on {row['tracked']}/{frames} timepoints"
            + (f", {row['divisions']} division(s)" if args.divisions else "")
        )
    if len(rows) >= 2:
        print(
            f"peak RSS ratio T = {rows[-1]['frames']} / T = {rows[0]['frames']}: "
            f"{rows[-1]['peak_mib'] / rows[0]['peak_mib']:.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
