"""Batches of movies on Dask distributed: a manifest in, one finished folder per movie out.

- :func:`segment_many` – run :func:`napari_sam2.segment_movie` on many movies, one Dask task per
  movie (a local cluster sized to the machine, or a running cluster by its scheduler address).
- :func:`read_manifest` / :class:`Job` – the movies and how their objects are given.
- :class:`MovieResult` – what happened to each movie (also in ``DIR/summary.csv``).

Nothing here imports napari or Qt; ``distributed`` (the ``batch`` extra) is imported only when a
batch runs, so this package imports without it.
"""

from __future__ import annotations

from .manifest import Job, ManifestError, read_manifest
from .outputs import MovieResult
from .runner import BatchInterrupted, segment_many

__all__ = [
    "BatchInterrupted",
    "Job",
    "ManifestError",
    "MovieResult",
    "read_manifest",
    "segment_many",
]
