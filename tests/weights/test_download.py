"""Tests for the checkpoint registry and the atomic downloader.

Every network test talks to a real HTTP server on 127.0.0.1 (port 0) started in a thread.
No other address is ever contacted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import re
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from napari_sam2.model.config import CONFIGS
from napari_sam2.weights import download as dl
from napari_sam2.weights import registry
from napari_sam2.weights.download import (
    ChecksumError,
    DownloadCancelled,
    DownloadError,
    cache_dir,
    cached_path,
    download,
    ensure_weights,
    is_cached,
    list_models,
)
from napari_sam2.weights.registry import REGISTRY, get_weights_info

CHUNK = 256  # small chunks so the ~1.5 kB test checkpoint arrives in several pieces


# --------------------------------------------------------------------------- fixtures


class _Server:
    """Tiny HTTP server with a few behaviours, keyed by path."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.requests: list[str] = []
        self.release = threading.Event()  # lets stalled handlers finish at teardown
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                server.requests.append(self.path)
                data = server.payload
                if self.path.endswith("/ckpt.pt"):
                    self._send(200, data, length=len(data))
                elif self.path.endswith("/truncated.pt"):
                    # Announce the full length, send half, then drop the connection.
                    self._send(200, data[: len(data) // 2], length=len(data))
                    self.close_connection = True
                elif self.path.endswith("/nolength.pt"):
                    self._send(200, data, length=None)  # EOF-delimited body
                elif self.path.endswith("/stall.pt"):
                    server.release.wait(10)
                    self._send(200, data, length=len(data))
                else:
                    self._send(404, b"not found", length=9)

            def _send(self, code: int, body: bytes, length: int | None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/octet-stream")
                if length is not None:
                    self.send_header("Content-Length", str(length))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/files/{name}"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def ckpt_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A small real checkpoint, serialised with torch.save."""
    path = tmp_path_factory.mktemp("src") / "ckpt.pt"
    torch.save({"model": {"w": torch.randn(10)}}, path)
    return path.read_bytes()


@pytest.fixture
def server(ckpt_bytes: bytes):
    srv = _Server(ckpt_bytes)
    yield srv
    srv.close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point NAPARI_SAM2_CACHE at an empty temporary folder."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(dl.CACHE_ENV_VAR, str(folder))
    return folder


def _point_registry_at(
    monkeypatch: pytest.MonkeyPatch, name: str, url: str, payload: bytes | None
) -> None:
    """Make registry entry ``name`` download from the local server (with real checksums)."""
    info = REGISTRY[name]
    new = dataclasses.replace(
        info,
        url=url,
        size_bytes=None if payload is None else len(payload),
        sha256=None if payload is None else hashlib.sha256(payload).hexdigest(),
    )
    monkeypatch.setitem(registry.REGISTRY, name, new)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- registry


def test_registry_has_the_eight_official_files():
    assert len(REGISTRY) == 8
    for size in ("tiny", "small", "base_plus", "large"):
        v20, v21 = REGISTRY[f"sam2_hiera_{size}"], REGISTRY[f"sam2.1_hiera_{size}"]
        assert v20.url == (
            f"https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_{size}.pt"
        )
        assert v21.url == (
            f"https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_{size}.pt"
        )
    for name, info in REGISTRY.items():
        assert info.name == name == info.config_name
        assert info.filename == f"{name}.pt"
        assert name in CONFIGS
        assert info.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", info.sha256)
        assert info.size_bytes is None or 100e6 < info.size_bytes < 1e9
    assert len({i.sha256 for i in REGISTRY.values() if i.sha256}) == sum(
        1 for i in REGISTRY.values() if i.sha256
    )


def test_get_weights_info_and_unknown_name():
    assert get_weights_info("sam2.1_hiera_tiny") is REGISTRY["sam2.1_hiera_tiny"]
    assert get_weights_info("sam2.1_hiera_tiny.pt") is REGISTRY["sam2.1_hiera_tiny"]
    with pytest.raises(KeyError, match="sam2.1_hiera_large") as info:
        get_weights_info("sam3_hiera_huge")
    assert "sam3_hiera_huge" in str(info.value)


# --------------------------------------------------------------------------- cache


def test_cache_env_var_is_honoured(cache: Path):
    assert cache_dir() == cache
    assert cached_path("sam2.1_hiera_small") == cache / "sam2.1_hiera_small.pt"
    assert not is_cached("sam2.1_hiera_small")


def test_default_cache_dir_without_env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(dl.CACHE_ENV_VAR, raising=False)
    d = cache_dir()
    assert d.name == "checkpoints"
    assert "napari-sam2" in str(d)


def test_ensure_weights_downloads_into_cache_once(server, cache, ckpt_bytes, monkeypatch):
    _point_registry_at(monkeypatch, "sam2.1_hiera_tiny", server.url("ckpt.pt"), ckpt_bytes)
    path = ensure_weights("sam2.1_hiera_tiny", progress=None)
    assert path == cache / "sam2.1_hiera_tiny.pt"
    assert path.read_bytes() == ckpt_bytes
    assert is_cached("sam2.1_hiera_tiny")
    assert _leftovers(cache) == ["sam2.1_hiera_tiny.pt"]
    n_requests = len(server.requests)
    assert ensure_weights("sam2.1_hiera_tiny", progress=None) == path
    assert len(server.requests) == n_requests  # served from the cache, no network

    row = {m["name"]: m for m in list_models()}["sam2.1_hiera_tiny"]
    assert row["cached"] is True
    assert row["path"] == str(path)
    assert row["size_on_disk"] == len(ckpt_bytes)
    other = {m["name"]: m for m in list_models()}["sam2_hiera_large"]
    assert other["cached"] is False and other["size_on_disk"] is None


def test_truncated_cached_file_is_not_cached(cache, ckpt_bytes, monkeypatch):
    _point_registry_at(monkeypatch, "sam2.1_hiera_tiny", "file:///nowhere.pt", ckpt_bytes)
    cache.mkdir(parents=True)
    (cache / "sam2.1_hiera_tiny.pt").write_bytes(ckpt_bytes[:100])
    assert not is_cached("sam2.1_hiera_tiny")


# --------------------------------------------------------------------------- download


def test_download_success_with_progress(server, tmp_path, ckpt_bytes):
    calls: list[tuple[int, int | None]] = []
    dest = tmp_path / "out" / "model.pt"
    got = download(
        server.url("ckpt.pt"),
        dest,
        progress=lambda done, total: calls.append((done, total)),
        expected_sha256=hashlib.sha256(ckpt_bytes).hexdigest().upper(),  # case-insensitive
        expected_size=len(ckpt_bytes),
        chunk_size=CHUNK,
    )
    assert got == dest
    assert dest.read_bytes() == ckpt_bytes
    assert _leftovers(dest.parent) == ["model.pt"]  # no .part left
    n = len(ckpt_bytes)
    assert calls[0] == (0, n)
    assert calls[-1] == (n, n)
    assert len(calls) >= 1 + n // CHUNK
    done_values = [c[0] for c in calls]
    assert done_values == sorted(done_values)
    # The downloaded file is a valid checkpoint (loaded safely here, for the test only).
    obj = torch.load(dest, weights_only=True)
    assert obj["model"]["w"].shape == (10,)


def test_download_default_progress_and_default_dest(server, cache, ckpt_bytes):
    # Default progress="tqdm" must work (silent when stderr is not a TTY).
    path = download(server.url("ckpt.pt"))
    assert path == cache / "ckpt.pt"
    assert path.read_bytes() == ckpt_bytes


class _FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tqdm_bar_only_on_a_tty(server, tmp_path, ckpt_bytes, monkeypatch):
    tty = _FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)
    download(server.url("ckpt.pt"), tmp_path / "a.pt", chunk_size=CHUNK)
    assert "100%" in tty.getvalue() and "a.pt" in tty.getvalue()

    pipe = io.StringIO()  # not a TTY: silent
    monkeypatch.setattr(sys, "stderr", pipe)
    download(server.url("ckpt.pt"), tmp_path / "b.pt", chunk_size=CHUNK)
    assert pipe.getvalue() == ""
    assert (tmp_path / "b.pt").read_bytes() == ckpt_bytes


def test_download_without_content_length(server, tmp_path, ckpt_bytes):
    calls: list[tuple[int, int | None]] = []
    dest = download(
        server.url("nolength.pt"),
        tmp_path / "x.pt",
        progress=lambda d, t: calls.append((d, t)),
        chunk_size=CHUNK,
    )
    assert dest.read_bytes() == ckpt_bytes
    assert all(t is None for _, t in calls)
    assert calls[-1][0] == len(ckpt_bytes)


def test_file_url(tmp_path, ckpt_bytes):
    src = tmp_path / "local" / "weights.pt"
    src.parent.mkdir()
    src.write_bytes(ckpt_bytes)
    dest = download(
        src.as_uri(),
        tmp_path / "dst",  # not existing yet: used as the file name
        progress=None,
        expected_sha256=hashlib.sha256(ckpt_bytes).hexdigest(),
    )
    assert dest == tmp_path / "dst"
    assert dest.read_bytes() == ckpt_bytes
    # An existing directory as dest keeps the URL's file name.
    out_dir = tmp_path / "outdir"
    out_dir.mkdir()
    assert download(src.as_uri(), out_dir, progress=None) == out_dir / "weights.pt"


def test_interrupted_connection_leaves_nothing(server, tmp_path):
    dest = tmp_path / "out" / "model.pt"
    with pytest.raises(DownloadError) as info:
        download(server.url("truncated.pt"), dest, progress=None, chunk_size=CHUNK)
    assert not isinstance(info.value, DownloadCancelled)
    assert server.url("truncated.pt") in str(info.value)
    assert str(dest) in str(info.value)
    assert not dest.exists()
    assert _leftovers(dest.parent) == []


def test_cancel_from_progress_callback(server, tmp_path):
    cancel = threading.Event()
    dest = tmp_path / "model.pt"
    seen: list[int] = []

    def progress(done: int, total: int | None) -> None:
        seen.append(done)
        if done >= 2 * CHUNK:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        download(server.url("ckpt.pt"), dest, progress=progress, cancel=cancel, chunk_size=CHUNK)
    assert max(seen) == 2 * CHUNK  # stopped right after the event was set
    assert _leftovers(tmp_path) == []


def test_cancel_already_set_does_not_connect(server, tmp_path):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DownloadCancelled):
        download(server.url("ckpt.pt"), tmp_path / "m.pt", progress=None, cancel=cancel)
    assert server.requests == []
    assert _leftovers(tmp_path) == []


def test_progress_callback_error_aborts_cleanly(server, tmp_path):
    def progress(done: int, total: int | None) -> None:
        if done > 0:
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        download(server.url("ckpt.pt"), tmp_path / "m.pt", progress=progress, chunk_size=CHUNK)
    assert _leftovers(tmp_path) == []


def test_sha256_mismatch(server, tmp_path, ckpt_bytes):
    wrong = "0" * 64
    actual = hashlib.sha256(ckpt_bytes).hexdigest()
    with pytest.raises(ChecksumError) as info:
        download(server.url("ckpt.pt"), tmp_path / "m.pt", progress=None, expected_sha256=wrong)
    msg = str(info.value)
    assert wrong in msg and actual in msg
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("route", ["ckpt.pt", "nolength.pt"])
@pytest.mark.parametrize("delta", [-7, 7])
def test_size_mismatch(server, tmp_path, ckpt_bytes, route, delta):
    expected = len(ckpt_bytes) + delta
    with pytest.raises(ChecksumError) as info:
        download(
            server.url(route),
            tmp_path / "m.pt",
            progress=None,
            expected_size=expected,
            chunk_size=CHUNK,
        )
    msg = str(info.value)
    assert str(expected) in msg
    if route == "ckpt.pt" or delta > 0:
        assert str(len(ckpt_bytes)) in msg  # the actual size is reported
    assert _leftovers(tmp_path) == []


def test_http_404_names_url_and_cache_path(server, cache, monkeypatch):
    url = server.url("missing.pt")
    _point_registry_at(monkeypatch, "sam2.1_hiera_base_plus", url, None)
    with pytest.raises(DownloadError) as info:
        ensure_weights("sam2.1_hiera_base_plus", progress=None)
    msg = str(info.value)
    assert "404" in msg
    assert url in msg
    assert str(cache / "sam2.1_hiera_base_plus.pt") in msg
    assert info.value.__cause__ is None  # one clear message, no chained traceback
    assert _leftovers(cache) == []


def test_unreachable_server_fails_fast(cache, monkeypatch):
    url = f"http://127.0.0.1:{_closed_port()}/sam2.1_hiera_small.pt"
    _point_registry_at(monkeypatch, "sam2.1_hiera_small", url, None)
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as info:
        ensure_weights("sam2.1_hiera_small", progress=None, timeout=3.0)
    assert time.monotonic() - t0 < 3.5
    msg = str(info.value)
    assert url in msg
    assert str(cached_path("sam2.1_hiera_small")) in msg
    assert _leftovers(cache) == []


def test_stalled_server_times_out(server, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download(server.url("stall.pt"), tmp_path / "m.pt", progress=None, timeout=0.5)
    assert time.monotonic() - t0 < 2.0
    assert "0.5 s" in str(info.value)
    assert _leftovers(tmp_path) == []


def test_verify_hook_removes_bad_file(server, cache, ckpt_bytes, monkeypatch):
    _point_registry_at(monkeypatch, "sam2_hiera_tiny", server.url("ckpt.pt"), ckpt_bytes)
    seen: list[Path] = []

    def reject(path: Path) -> None:
        seen.append(path)
        assert path.read_bytes() == ckpt_bytes  # the complete file, before it is moved
        raise ValueError("state dict does not match the model")

    with pytest.raises(DownloadError, match="state dict does not match") as info:
        ensure_weights("sam2_hiera_tiny", progress=None, verify=reject)
    assert isinstance(info.value.__cause__, ValueError)
    assert len(seen) == 1 and seen[0].parent == cache
    assert not is_cached("sam2_hiera_tiny")
    assert _leftovers(cache) == []

    # A passing verify lets the file into the cache.
    accepted: list[Path] = []
    path = ensure_weights("sam2_hiera_tiny", progress=None, verify=accepted.append)
    assert len(accepted) == 1
    assert path.read_bytes() == ckpt_bytes
    assert _leftovers(cache) == ["sam2_hiera_tiny.pt"]


def test_registry_checksums_are_enforced(server, cache, ckpt_bytes, monkeypatch):
    # A registry entry whose hash does not match what the server sends must be rejected.
    info = REGISTRY["sam2.1_hiera_large"]
    monkeypatch.setitem(
        registry.REGISTRY,
        "sam2.1_hiera_large",
        dataclasses.replace(info, url=server.url("ckpt.pt"), size_bytes=len(ckpt_bytes)),
    )
    with pytest.raises(ChecksumError, match=info.sha256):
        ensure_weights("sam2.1_hiera_large", progress=None)
    assert _leftovers(cache) == []


def test_unknown_name_is_key_error(cache):
    with pytest.raises(KeyError, match="known checkpoints"):
        download("not_a_model", progress=None)


def test_download_goes_through_pooch_with_the_known_hash(server, tmp_path, ckpt_bytes, monkeypatch):
    calls: list[dict] = []
    real = dl.pooch.retrieve

    def spy(url, **kwargs):
        calls.append(kwargs)
        return real(url, **kwargs)

    monkeypatch.setattr(dl.pooch, "retrieve", spy)
    sha = hashlib.sha256(ckpt_bytes).hexdigest()
    dest = download(server.url("ckpt.pt"), tmp_path / "m.pt", progress=None, expected_sha256=sha)
    assert dest.read_bytes() == ckpt_bytes
    assert len(calls) == 1
    assert calls[0]["known_hash"] == f"sha256:{sha}"
    assert Path(calls[0]["path"]) == tmp_path and calls[0]["fname"] == "m.pt"
    # Same file, same hash: pooch keeps it and the server is not asked again.
    n_requests = len(server.requests)
    download(server.url("ckpt.pt"), dest, progress=None, expected_sha256=sha)
    assert len(server.requests) == n_requests


def test_a_file_with_the_wrong_hash_is_kept_until_the_new_one_is_complete(
    server, tmp_path, ckpt_bytes
):
    dest = tmp_path / "m.pt"
    dest.write_bytes(b"old contents")
    sha = hashlib.sha256(ckpt_bytes).hexdigest()
    with pytest.raises(DownloadError):
        download(server.url("truncated.pt"), dest, progress=None, expected_sha256=sha)
    assert dest.read_bytes() == b"old contents"  # the failed download did not touch it
    assert _leftovers(tmp_path) == ["m.pt"]
    download(server.url("ckpt.pt"), dest, progress=None, expected_sha256=sha)
    assert dest.read_bytes() == ckpt_bytes
    assert _leftovers(tmp_path) == ["m.pt"]
