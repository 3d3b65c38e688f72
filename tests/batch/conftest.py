"""Fixtures of the batch tests: small movies, their movie-by-movie labels, a 2-worker cluster."""

from __future__ import annotations

import pytest

pytest.importorskip("distributed")

from batch_helpers import make_batch  # noqa: E402


@pytest.fixture(scope="session")
def micro():
    from napari_sam2 import load_model

    return load_model("micro", device="cpu")


@pytest.fixture(scope="session")
def batch(tmp_path_factory, micro):
    """The six-movie batch and, per good movie, the labels of ``segment_movie`` on it alone."""
    from napari_sam2 import segment_movie

    data = make_batch(tmp_path_factory.mktemp("batch") / "data")
    data["reference"] = {
        name: segment_movie(kw.pop("movie"), model=micro, **kw)
        for name, kw in ((n, dict(a)) for n, a in data["args"].items())
    }
    return data


@pytest.fixture(scope="session")
def dask_client():
    """A local cluster of 2 worker processes (1 thread each), shared by the batch tests."""
    from napari_sam2.batch.cluster import local_client

    client, cluster = local_client(2, 1, dashboard_address=":0")
    yield client
    client.close()
    cluster.close()
