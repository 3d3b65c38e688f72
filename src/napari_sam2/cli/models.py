"""``napari-sam2 models``: list the bundled and the official models, what is in the checkpoint
cache and where; download one (checksum verified)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .common import EXIT_OK, PROG, CLIError, _desc, _fmt_bytes, _Formatter

__all__ = ["add_models_parser", "cmd_models"]


def cmd_models(args: argparse.Namespace) -> int:
    from ..weights.download import CACHE_ENV_VAR, cache_dir, list_models
    from ..weights.registry import BUNDLED_MODEL, REGISTRY, bundled_checkpoint_path

    if args.download:
        name = args.download[:-3] if args.download.endswith(".pt") else args.download
        if name not in REGISTRY:
            raise CLIError(
                f"unknown model {args.download!r}; downloadable models: {', '.join(REGISTRY)}"
            )
        return _download(name, args.quiet)

    bundled = bundled_checkpoint_path()  # weights.registry: listing does not import torch
    micro = {
        "name": BUNDLED_MODEL,
        "description": (
            "bundled: nuclei, stained cells; weaker on phase, bacteria (2.0 M params, 256 px)"
        ),
        "status": "bundled" if bundled.is_file() else "missing",
        "path": str(bundled),
        "size": bundled.stat().st_size if bundled.is_file() else None,
    }
    rows = [micro]
    for m in list_models():
        status = "cached" if m["cached"] else ("partial" if m["size_on_disk"] else "no")
        rows.append(
            {
                "name": m["name"],
                "description": m["description"],
                "status": status,
                "path": m["path"],
                "size": m["size_on_disk"] if m["cached"] else m["expected_size"],
                "url": m["url"],
            }
        )
    if args.json:
        print(json.dumps({"cache_dir": str(cache_dir()), "models": rows}, indent=2))
        return EXIT_OK
    env = " (from $" + CACHE_ENV_VAR + ")" if os.environ.get(CACHE_ENV_VAR, "").strip() else ""
    print(f"checkpoint cache: {cache_dir()}{env}")
    print(f"{'name':<24}{'size':>10}  {'status':<8}  description")
    for r in rows:
        print(f"{r['name']:<24}{_fmt_bytes(r['size']):>10}  {r['status']:<8}  {r['description']}")
    cached = [r["name"] for r in rows[1:] if r["status"] == "cached"]
    default = next((n for n in cached if n.startswith("sam2.1")), BUNDLED_MODEL)
    print(f"default model (segment without --model): {default}")
    print(f"download one:  {PROG} models --download sam2.1_hiera_tiny")
    return EXIT_OK


def _download(name: str, quiet: bool) -> int:
    from ..weights.download import cached_path, ensure_weights, is_cached
    from ..weights.load import read_checkpoint

    if is_cached(name):
        print(f"{name} is already cached: {cached_path(name)}")
        return EXIT_OK
    bar = None

    def progress(done: int, total: int | None) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(
                total=total,
                desc=name,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                disable=quiet,
            )
        bar.update(done - bar.n)

    t0 = time.perf_counter()
    try:
        path = ensure_weights(name, progress=progress, verify=lambda p: read_checkpoint(p))
    finally:
        if bar is not None:
            bar.close()
    size = path.stat().st_size
    print(f"downloaded {name} ({_fmt_bytes(size)}) in {time.perf_counter() - t0:.0f} s: {path}")
    return EXIT_OK


_MODELS_EPILOG = f"""\
examples:
  {PROG} models
  {PROG} models --download sam2.1_hiera_tiny
  NAPARI_SAM2_CACHE=/data/models {PROG} models      # use another cache folder
Offline: copy the .pt files into the cache folder shown by '{PROG} models'.
"""


def add_models_parser(sub, common: argparse.ArgumentParser) -> None:
    """Add ``napari-sam2 models`` to the subparsers ``sub`` (``common``: --debug, --quiet)."""
    p = sub.add_parser(
        "models",
        parents=[common],
        formatter_class=_Formatter,
        epilog=_MODELS_EPILOG,
        help="list the models, what is downloaded and where; download one",
        description=_desc(
            "List the bundled and the official SAM 2 / 2.1 models, their sizes and "
            "whether they are in the checkpoint cache; --download fetches one (checksum verified)."
        ),
    )
    p.add_argument("--download", metavar="NAME", help="download an official checkpoint")
    p.add_argument("--json", action="store_true", help="machine-readable listing")
    p.set_defaults(func=cmd_models)
