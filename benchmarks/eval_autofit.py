"""Which objects fitting the masks to the image helps: J per object, model's masks vs fitted,
by how much each object's zoom window magnifies it (choosing ``fit_masks="auto"``'s threshold).

Every movie runs once per mode of ``--modes`` (``off``: ``fit_masks=False``, ``on``: True,
``auto``: the default), default settings otherwise (zoom on), one positive click per object at
its most interior pixel on frame 0, tracked forward. The fit changes only the written masks
(the memory bank keeps the model's own), so the tracking is the same in every mode. Per object
it records the magnification of its frame-0 window (model-input pixels per frame pixel,
``video/_autofit.py``; none without a window) and its J on each frame (mask IoU, on frames where
its target or its mask is non-empty), whether the session fitted it, and how clearly it stands
out from its margin on frame 0 (``level_stats``). From the ``off`` and ``on`` runs it then
prints, per movie group, J when only the objects magnified at least M are fitted (the two
runs' masks combined per object; where neighbours compete for pixels this differs slightly from
a real run) for a range of M, without and with ``"auto"``'s background-share gate, and the mean
change (fitted - model) per magnification band.

Movies (validation seeds only; the test seeds are for the reported tables):

* size bins ``--bins SIZE:D`` (``eval_zoom.py``'s nuclei generator, ``--bin-movies`` movies per
  bin, seeds ``--seed0`` + SIZE + D + 1000 k);
* ``--demo-seeds``: the demo's generator (16 nuclei 28-48 px on 256-px frames, 20 frames);
* ``--looks``: the look families (``train.looks``, ``--split`` seeds, ``--movies`` each) at
  256 px, and with ``--shrink K ...`` the same movies binned K x K (the mean of each K x K block:
  cells K times smaller, as through a K times weaker objective) and mirrored out to about three
  times that side, so small cells of every look sit in a larger frame and run in magnifying
  windows; objects touching the binned movie's border on frame 0 are not clicked (their mirror
  images would join them).

Usage:  python benchmarks/eval_autofit.py [--threads 1] [--seed0 40000] [--bins 512:8 ...]
            [--bin-movies 2] [--frames 8] [--cells 6] [--demo-seeds 100 ...]
            [--looks [FAMILY ...]] [--split validation] [--movies 2] [--shrink 2 3]
            [--modes off on] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _models import cpu_eval_model, cpu_name  # noqa: E402

from napari_sam2.video._autofit import MAX_BACKGROUND_SHARE  # noqa: E402

#: thresholds M tried (model-input px per frame px); inf: no object fitted
THRESHOLDS = (0.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, float("inf"))
#: magnification bands the mean change is reported in
BANDS = ((0.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, 6.0), (6.0, float("inf")))
MODES = {"off": False, "on": True, "auto": "auto"}


def per_frame_j(pred: np.ndarray, truth: np.ndarray, obj: int) -> list[float]:
    """J of one object on each frame where its target or its mask is non-empty."""
    out = []
    for t in range(len(truth)):
        a, b = pred[t] == obj, truth[t] == obj
        u = np.count_nonzero(a | b)
        if u:
            out.append(np.count_nonzero(a & b) / u)
    return out


def run_movie(model, movie: np.ndarray, truth: np.ndarray, points: dict, modes, group: str,
              name: str) -> list[dict]:
    """One record per object: group, movie, id, magnification, J per frame in each mode."""
    from napari_sam2 import VideoSession
    from napari_sam2.video._autofit import magnification

    recs = {o: {"group": group, "movie": name, "obj": int(o)} for o in points}
    for mode in modes:
        session = VideoSession(model, movie, axes="TYX", fit_masks=MODES[mode])
        for obj, pt in points.items():
            session.add_points(0, obj, [pt], [1])
        for _ in session.propagate():
            pass
        labels = session.labels()
        for o in points:
            recs[o]["mag"] = magnification(session.window(o, 0), model.config.image_size)
            recs[o][mode] = per_frame_j(labels, truth, o)
            recs[o][f"fitted {mode}"] = o in session.fit.fits
            if mode == modes[0]:
                recs[o] |= level_stats(labels[0] == o, session.frames)
    return list(recs.values())


def level_stats(mask: np.ndarray, frames) -> dict:
    """How clear an object's image level is on frame 0, from its written mask: ``wrong`` (the
    share of its pixels on the background's side of its margin's median, the gate of
    ``video/_autofit.py``), and measured, not kept: ``contrast`` (|mean inside - median of the
    margin| / the margin's robust sigma), ``sep`` (the same over the inside's sigma), ``eta``
    and ``inside_eta`` (Otsu's between-class share of the variance over mask and margin, over
    the mask), ``kept`` (share of the mask the fit keeps; 0 where it finds no level)."""
    from skimage.filters import threshold_otsu

    from napari_sam2.video._autofit import background_share
    from napari_sam2.video._frame_fit import frame_image
    from napari_sam2.video._volume_fit import fit_level, margin_radius, smooth

    if not mask.any():
        return {"contrast": 0.0, "eta": 0.0, "kept": 0.0}
    ys, xs = np.nonzero(mask)
    pad = int(np.ceil(margin_radius(mask.sum()))) + 4
    y0, x0 = max(ys.min() - pad, 0), max(xs.min() - pad, 0)
    y1, x1 = ys.max() + pad + 1, xs.max() + pad + 1
    img = smooth(frame_image(frames, 0))[y0:y1, x0:x1]
    m = mask[y0:y1, x0:x1]
    from scipy import ndimage

    region = ndimage.distance_transform_edt(~m) <= margin_radius(m.sum())
    margin = region & ~m
    vals = img[region]
    med = float(np.median(img[margin]))
    sigma = 1.4826 * float(np.median(np.abs(img[margin] - med))) + 1e-6
    contrast = abs(float(img[m].mean()) - med) / sigma
    eta = 0.0
    if vals.max() > vals.min():
        th = threshold_otsu(vals)
        a, b = vals[vals <= th], vals[vals > th]
        eta = float(len(a) * len(b) * (a.mean() - b.mean()) ** 2 / len(vals) ** 2 / vals.var())
    fit = fit_level(m, img)
    kept = 0.0 if fit is None else float(fit.apply(m, img).sum() / m.sum())
    inside = img[m]
    wrong = background_share(m, img)
    sep = abs(float(inside.mean()) - med) / (float(inside.std()) + 1e-6)
    ins_eta = 0.0
    if inside.max() > inside.min():
        th = threshold_otsu(inside)
        a, b = inside[inside <= th], inside[inside > th]
        ins_eta = float(len(a) * len(b) * (a.mean() - b.mean()) ** 2 / len(inside) ** 2
                        / inside.var())
    return {"contrast": contrast, "eta": eta, "kept": kept, "wrong": wrong, "sep": sep,
            "inside_eta": ins_eta}


def bin_movies(model, args) -> list[dict]:
    from napari_sam2.cli.demo import interior_points
    from napari_sam2.train.synthetic import make_movie

    out = []
    for b in args.bins:
        size, d = int(b.split(":")[0]), float(b.split(":")[1])
        for k in range(args.bin_movies):
            seed = args.seed0 + size + int(d) + 1000 * k
            mv = make_movie(kind="nuclei", shape=(size, size), radius=(0.45 * d, 0.55 * d),
                            n_cells=args.cells, n_frames=args.frames, seed=seed,
                            division_rate=0.0, enter_leave=0.0)
            points = interior_points(mv.labels[0])
            out += run_movie(model, mv.movie, mv.labels, points, args.modes, f"{d:g} px @ {size}",
                             f"seed {seed}")
            print(f"# bin {b} movie {k} done", flush=True)
    return out


def demo_movies(model, args) -> list[dict]:
    from napari_sam2.cli.demo import interior_points
    from napari_sam2.train.synthetic import make_movie

    out = []
    for seed in args.demo_seeds:
        mv = make_movie(seed=seed, kind="nuclei", n_frames=20, shape=(256, 256), n_cells=16,
                        radius=(14.0, 24.0))
        points = interior_points(mv.labels[0])
        out += run_movie(model, mv.movie, mv.labels, points, args.modes, "demo generator",
                         f"seed {seed}")
    return out


def shrink(movie: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The movie binned k x k (block means, same dtype), mirrored out by its side - 1 on each
    side; the labels (each block's centre pixel) padded with background. Returns (movie,
    labels, pad)."""
    t, h, w = movie.shape
    h, w = h // k * k, w // k * k
    blocks = movie[:, :h, :w].astype(np.float32).reshape(t, h // k, k, w // k, k)
    small = np.round(blocks.mean(axis=(2, 4))).astype(movie.dtype)
    lab = labels[:, k // 2 : h : k, k // 2 : w : k]
    pad = min(small.shape[1:]) - 1
    widths = ((0, 0), (pad, pad), (pad, pad))
    return np.pad(small, widths, mode="reflect"), np.pad(lab, widths), pad


def look_movies(model, args) -> list[dict]:
    from napari_sam2.cli.demo import ancestor_labels, interior_points
    from napari_sam2.train.looks import eval_seed, make_look

    out = []
    for family in args.looks:
        for m in range(args.movies):
            mv = make_look(family, eval_seed(family, m, args.split), (256, 256), args.frames)
            for k in [1, *args.shrink]:
                if k == 1:
                    movie, labels = mv.movie, mv.labels
                    points = interior_points(labels[0], min_area=30)
                else:
                    movie, labels, pad = shrink(mv.movie, mv.labels, k)
                    core = labels[0, pad:-pad, pad:-pad]
                    edge = np.unique(np.concatenate(
                        [core[0], core[-1], core[:, 0], core[:, -1]]))
                    points = {o: p for o, p in interior_points(labels[0], min_area=6).items()
                              if o not in edge}
                points = {o: points[o] for o in sorted(points)[: args.cells_look]}
                if not points:
                    continue
                truth = ancestor_labels(labels, mv.lineage, set(points))
                group = family if k == 1 else f"{family} / {k}"
                out += run_movie(model, movie, truth, points, args.modes, group,
                                 f"{family} {m} / {k}")
            print(f"# look {family} movie {m} done", flush=True)
    return out


def pooled(recs: list[dict], pick) -> float:
    """Mean J over the (object, frame) pairs, each object's frames from ``pick(rec)``."""
    js = [j for r in recs for j in pick(r)]
    return float(np.mean(js)) if js else float("nan")


def report(recs: list[dict], modes) -> None:
    """Per group: J per mode and J with only the objects magnified >= M fitted; mean change
    per magnification band over all groups."""
    groups: dict[str, list[dict]] = {}
    for r in recs:
        groups.setdefault(r["group"], []).append(r)
    if "off" in modes and "on" in modes:
        head = " | ".join("never" if m == float("inf") else f"M {m:g}" for m in THRESHOLDS)
        print(f"\n| movies | objects | windowed | mag range | {' | '.join(modes)} | {head} |")
        print("|---|---:|---:|---|" + "---:|" * (len(modes) + len(THRESHOLDS)))
        for g, rs in groups.items():
            mags = [r["mag"] for r in rs if r["mag"] is not None]
            rng = f"{min(mags):.1f}-{max(mags):.1f}" if mags else "-"
            cols = [pooled(rs, lambda r, m=m: r[m]) for m in modes]
            sweep = [pooled(rs, lambda r, m=m: r["on"] if r["mag"] is not None and r["mag"] >= m
                            else r["off"]) for m in THRESHOLDS]
            print(f"| {g} | {len(rs)} | {len(mags)} | {rng} | "
                  + " | ".join(f"{v:.3f}" for v in cols + sweep) + " |")
        print(f"\nThe same with the background-share gate (<= {MAX_BACKGROUND_SHARE}):")
        print(f"| movies | {head} |")
        print("|---|" + "---:|" * len(THRESHOLDS))
        for g, rs in groups.items():
            sweep = [pooled(rs, lambda r, m=m: r["on"] if r["mag"] is not None and r["mag"] >= m
                            and r["wrong"] is not None and r["wrong"] <= MAX_BACKGROUND_SHARE
                            else r["off"]) for m in THRESHOLDS]
            print(f"| {g} | " + " | ".join(f"{v:.3f}" for v in sweep) + " |")
        print("\n| magnification | objects | J model | J fitted | change |")
        print("|---|---:|---:|---:|---:|")
        for lo, hi in BANDS:
            rs = [r for r in recs if r["mag"] is not None and lo <= r["mag"] < hi]
            if rs:
                a, b = pooled(rs, lambda r: r["off"]), pooled(rs, lambda r: r["on"])
                print(f"| {lo:g}-{hi:g} | {len(rs)} | {a:.3f} | {b:.3f} | {b - a:+.3f} |")
    else:
        print(f"\n| movies | objects | {' | '.join(modes)} |")
        print("|---|---:|" + "---:|" * len(modes))
        for g, rs in groups.items():
            cols = [pooled(rs, lambda r, m=m: r[m]) for m in modes]
            print(f"| {g} | {len(rs)} | " + " | ".join(f"{v:.3f}" for v in cols) + " |")


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="micro")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed0", type=int, default=40_000,
                    help="first size-bin seed (validation; the reported tables use 30000)")
    ap.add_argument("--bins", nargs="*", default=[], metavar="SIZE:D")
    ap.add_argument("--bin-movies", type=int, default=2)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--cells", type=int, default=6, help="cells per size-bin movie")
    ap.add_argument("--demo-seeds", type=int, nargs="*", default=[])
    ap.add_argument("--looks", nargs="*", default=None, metavar="FAMILY",
                    help="look families (no name: all)")
    ap.add_argument("--split", default="validation", choices=("validation", "test"))
    ap.add_argument("--movies", type=int, default=2, help="movies per look family")
    ap.add_argument("--cells-look", type=int, default=8, help="clicked cells per look movie")
    ap.add_argument("--shrink", type=int, nargs="*", default=[],
                    help="also the look movies binned K x K in a mirrored larger frame")
    ap.add_argument("--modes", nargs="+", default=["off", "on"], choices=tuple(MODES))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    model = cpu_eval_model(args)
    print(f"# {model.config.name}, modes {args.modes}, {cpu_name()}, {args.threads} threads",
          flush=True)
    t0 = time.perf_counter()
    args.modes = list(dict.fromkeys(args.modes))
    recs = bin_movies(model, args) + demo_movies(model, args)
    if args.looks:
        recs += look_movies(model, args)
    print(f"# {time.perf_counter() - t0:.0f} s", flush=True)
    report(recs, args.modes)
    if args.json:
        args.json.write_text(json.dumps(recs))
    return recs


if __name__ == "__main__":
    main()
