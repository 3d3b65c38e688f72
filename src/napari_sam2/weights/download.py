"""Checkpoint downloads into a per-user cache, on top of :mod:`pooch`.

:func:`pooch.retrieve` owns the file handling: the bytes go to a temporary file in the cache
folder, pooch checks the known SHA-256, and only then renames the file to its final name; on any
error the temporary file is deleted and nothing is left at the destination. A small pooch
downloader (:class:`_Downloader`) streams ``http://``, ``https://`` (with :mod:`requests`) and
``file://`` URLs in chunks, and adds what the plugin needs around pooch: a progress bar or
callback, a ``cancel`` event checked between chunks, the exact file size when the registry
knows it, an optional caller-supplied check of the complete file, and error messages that name
the URL and the path where the file can be placed by hand (the offline hint). Downloaded bytes
are never executed or unpickled here. Strict loading is the model loader's job.

The cache directory is ``$NAPARI_SAM2_CACHE`` if that is set, otherwise
``platformdirs.user_cache_dir("napari-sam2") / "checkpoints"``. Offline users can place the
official ``.pt`` files there by hand (see :func:`cached_path`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import platformdirs
import pooch
import requests

from napari_sam2.weights.registry import REGISTRY, WeightsInfo, get_weights_info

__all__ = [
    "CACHE_ENV_VAR",
    "ChecksumError",
    "DownloadCancelled",
    "DownloadError",
    "ProgressArg",
    "cache_dir",
    "cached_path",
    "download",
    "ensure_weights",
    "is_cached",
    "list_models",
]

CACHE_ENV_VAR = "NAPARI_SAM2_CACHE"
DEFAULT_CHUNK_SIZE = 1 << 20  # 1 MiB
_USER_AGENT = "napari-sam2 (pooch)"

#: ``progress`` argument: a callback ``(bytes_done, total_bytes_or_None)``, ``"tqdm"`` for a
#: terminal progress bar (shown only when stderr is a TTY), or ``None`` for silence.
ProgressArg = Callable[[int, int | None], None] | Literal["tqdm"] | None


class DownloadError(RuntimeError):
    """A checkpoint could not be downloaded (network, HTTP, verification or I/O failure)."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not match the expected size or SHA-256."""


class DownloadCancelled(DownloadError):
    """The download was cancelled through its ``cancel`` event. Nothing was written."""


def cache_dir() -> Path:
    """Directory where checkpoints are cached.

    Returns:
        ``Path($NAPARI_SAM2_CACHE)`` if that environment variable is set and non-empty (the
        files are placed directly in it), else
        ``platformdirs.user_cache_dir("napari-sam2") / "checkpoints"``. The directory is not
        created here.
    """
    env = os.environ.get(CACHE_ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("napari-sam2")) / "checkpoints"


def cached_path(name: str) -> Path:
    """Where the checkpoint ``name`` lives (or would live) in the cache.

    Args:
        name: registry name, e.g. ``"sam2.1_hiera_tiny"``.

    Returns:
        ``cache_dir() / "<name>.pt"``. The file may not exist.
    """
    return cache_dir() / get_weights_info(name).filename


def _size_ok(path: Path, expected_size: int | None) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    return path.is_file() and (expected_size is None or st.st_size == expected_size)


def is_cached(name: str) -> bool:
    """Whether the checkpoint ``name`` is present in the cache.

    The check is cheap: the file must exist and, when the registry knows the exact size, have
    that size. The SHA-256 is not recomputed. A truncated file counts as not cached.
    """
    info = get_weights_info(name)
    return _size_ok(cache_dir() / info.filename, info.size_bytes)


def list_models() -> list[dict[str, Any]]:
    """Describe every official checkpoint and its cache state (for CLIs and GUIs).

    Returns:
        One dict per registry entry with keys ``name``, ``url``, ``description``,
        ``config_name``, ``cached`` (bool), ``path`` (str, the cache location),
        ``size_on_disk`` (bytes, or ``None`` if absent) and ``expected_size`` (bytes or
        ``None``).
    """
    out: list[dict[str, Any]] = []
    for info in REGISTRY.values():
        path = cache_dir() / info.filename
        try:
            size_on_disk: int | None = path.stat().st_size if path.is_file() else None
        except OSError:
            size_on_disk = None
        out.append(
            {
                "name": info.name,
                "url": info.url,
                "description": info.description,
                "config_name": info.config_name,
                "cached": _size_ok(path, info.size_bytes),
                "path": str(path),
                "size_on_disk": size_on_disk,
                "expected_size": info.size_bytes,
            }
        )
    return out


# --------------------------------------------------------------------------- helpers

# One lock per destination file so two threads never download the same file at once.
_DEST_LOCKS: dict[str, threading.RLock] = {}
_DEST_LOCKS_GUARD = threading.Lock()


def _dest_lock(dest: Path) -> threading.RLock:
    key = os.path.normcase(os.path.abspath(dest))
    with _DEST_LOCKS_GUARD:
        return _DEST_LOCKS.setdefault(key, threading.RLock())


def _filename_from_url(url: str) -> str:
    name = urllib.parse.unquote(Path(urllib.parse.urlparse(url).path).name)
    if not name or name in {".", ".."} or "/" in name or "\\" in name:
        raise ValueError(f"cannot derive a file name from URL {url!r}; pass dest=")
    return name


def _resolve(name_or_url: str, dest: Path | None) -> tuple[str, Path, WeightsInfo | None]:
    """Map a registry name or URL to ``(url, destination file, registry entry or None)``."""
    info: WeightsInfo | None = None
    if "://" in name_or_url:
        url = name_or_url
        default_name = _filename_from_url(url)
    else:
        info = get_weights_info(name_or_url)
        url = info.url
        default_name = info.filename
    if dest is None:
        dest = cache_dir() / default_name
    else:
        dest = Path(dest).expanduser()
        if dest.is_dir():
            dest = dest / default_name
    return url, dest, info


def _hint(url: str, dest: Path, expected_size: int | None) -> str:
    """The offline hint: where to get the file and the exact path to copy it to."""
    lines = [
        "If this computer has no internet access, download the file on another machine",
        f"from {url}",
        "and copy it to exactly this path:",
        f"  {dest}",
    ]
    if dest.is_file() and expected_size is not None:
        lines.append(
            f"(a file is already there, but its size {dest.stat().st_size} bytes does not "
            f"match the expected {expected_size} bytes)"
        )
    if dest.parent == cache_dir():
        lines.append(f"You can also set {CACHE_ENV_VAR} to a folder that holds the .pt files.")
    return "\n".join(lines)


def _reason(exc: BaseException, timeout: float) -> str:
    """One line saying why a request failed."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code} {exc.response.reason}"
    if isinstance(exc, requests.Timeout):
        return f"no response within {timeout:g} s"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed or closed early"
    return str(exc) or type(exc).__name__


def _make_progress(
    progress: ProgressArg, desc: str
) -> tuple[Callable[[int, int | None], None] | None, Callable[[], None]]:
    """Turn the ``progress`` argument into ``(callback or None, close function)``."""
    if progress is None:
        return None, lambda: None
    if progress == "tqdm":
        state: dict[str, Any] = {"bar": None, "last": 0}

        def tqdm_cb(done: int, total: int | None) -> None:
            if state["bar"] is None:
                from tqdm import tqdm

                # disable=None: draw only when stderr is a TTY, stay silent in logs / CI.
                state["bar"] = tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=desc,
                    disable=None,
                    file=sys.stderr,
                )
            state["bar"].update(done - state["last"])
            state["last"] = done

        def close() -> None:
            if state["bar"] is not None:
                state["bar"].close()
                state["bar"] = None

        return tqdm_cb, close
    if callable(progress):
        return progress, lambda: None
    raise TypeError(f"progress must be a callable, 'tqdm' or None, not {progress!r}")


@dataclass
class _Downloader:
    """A pooch downloader: streams one URL into pooch's temporary file, checking as it goes.

    pooch calls it as ``downloader(url, output_file, pooch_instance)``; it writes the complete,
    size- and SHA-256-checked (and ``verify``-checked) file to ``output_file`` or raises. pooch
    then checks the known hash once more and renames the file into place.
    """

    dest: Path
    progress: ProgressArg
    expected_sha256: str | None
    expected_size: int | None
    timeout: float
    cancel: threading.Event | None
    verify: Callable[[Path], None] | None
    chunk_size: int

    def _fail(self, url: str, what: str, exc: BaseException | None = None) -> DownloadError:
        reason = f": {_reason(exc, self.timeout)}" if exc is not None else ""
        return DownloadError(
            f"Could not download {self.dest.name} from {url}{what}{reason}.\n"
            + _hint(url, self.dest, self.expected_size)
        )

    def _check_cancel(self, url: str) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise DownloadCancelled(f"download of {url} was cancelled")

    def _open(self, url: str) -> tuple[Iterator[bytes], int | None, Callable[[], None]]:
        """Open ``url``: ``(chunk iterator, announced length in bytes or None, close)``."""
        if urllib.parse.urlparse(url).scheme == "file":
            path = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
            try:
                fh = open(path, "rb")  # noqa: SIM115 (closed by the returned close function)
            except OSError as exc:
                raise self._fail(url, "", exc) from None
            chunks = iter(lambda: fh.read(self.chunk_size), b"")
            return chunks, path.stat().st_size, fh.close
        try:
            response = requests.get(
                url, stream=True, timeout=self.timeout, headers={"User-Agent": _USER_AGENT}
            )
            response.raise_for_status()
        except (requests.RequestException, ValueError) as exc:
            raise self._fail(url, "", exc) from None
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        return response.iter_content(self.chunk_size), total, response.close

    def __call__(self, url: str, output_file: str, pooch_instance: Any) -> None:
        """Write the file at ``url`` to ``output_file`` (pooch's temporary file)."""
        self._check_cancel(url)
        chunks, total, close = self._open(url)
        callback, close_progress = _make_progress(self.progress, self.dest.name)
        hasher = hashlib.sha256()
        done = 0
        try:
            if total is not None and self.expected_size not in (None, total):
                raise ChecksumError(
                    f"Size mismatch for {url}: expected {self.expected_size} bytes, the server "
                    f"reports {total} bytes. Nothing was written to {self.dest}."
                )
            shown_total = total if total is not None else self.expected_size
            if callback is not None:
                callback(0, shown_total)
            with open(output_file, "wb") as fh:
                while True:
                    self._check_cancel(url)
                    try:
                        chunk = next(chunks, b"")
                    except (requests.RequestException, OSError) as exc:
                        raise self._fail(url, f" (interrupted after {done} bytes)", exc) from None
                    if not chunk:
                        break
                    fh.write(chunk)
                    hasher.update(chunk)
                    done += len(chunk)
                    if self.expected_size is not None and done > self.expected_size:
                        raise ChecksumError(
                            f"Size mismatch for {url}: expected {self.expected_size} bytes, "
                            f"received more than that ({done} so far)."
                        )
                    if callback is not None:
                        callback(done, shown_total)
                    self._check_cancel(url)
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            close()
            close_progress()
        if total is not None and done != total:
            raise self._fail(url, f" (connection closed after {done} of {total} bytes)")
        if self.expected_size is not None and done != self.expected_size:
            raise ChecksumError(
                f"Size mismatch for {url}: expected {self.expected_size} bytes, got {done} bytes."
            )
        actual = hasher.hexdigest()
        if self.expected_sha256 is not None and actual != self.expected_sha256:
            raise ChecksumError(
                f"SHA-256 mismatch for {url}: expected {self.expected_sha256}, got {actual}. "
                "The file may be corrupted or the server may have sent something else. "
                "It was deleted."
            )
        if self.verify is not None:
            try:
                self.verify(Path(output_file))
            except Exception as exc:
                raise DownloadError(
                    f"Downloaded file from {url} failed verification and was deleted: {exc}"
                ) from exc


# pooch's INFO lines ("Downloading data from ...") are dropped in threads running download():
# its progress bar and errors say the same. Other users of pooch keep their messages.
_QUIET = threading.local()
pooch.get_logger().addFilter(
    lambda record: record.levelno > logging.INFO or not getattr(_QUIET, "active", False)
)


# --------------------------------------------------------------------------- download


def download(
    name_or_url: str,
    dest: Path | None = None,
    *,
    progress: ProgressArg = "tqdm",
    expected_sha256: str | None = None,
    expected_size: int | None = None,
    timeout: float = 30.0,
    cancel: threading.Event | None = None,
    verify: Callable[[Path], None] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Path:
    """Download a checkpoint with :func:`pooch.retrieve`, checking size and SHA-256.

    The file is written to a temporary file next to ``dest`` and renamed to ``dest`` only after
    every check has passed, so ``dest`` is either absent or complete.

    Args:
        name_or_url: a registry name (``"sam2.1_hiera_tiny"``) or a URL (``https://``,
            ``http://`` or ``file://``). For a registry name the registry's URL, size and hash
            are used unless overridden here.
        dest: final file path (or an existing directory to put it in). Defaults to the cache:
            ``cache_dir() / <file name>``. Parent directories are created. A file already at
            ``dest`` is kept and not downloaded again when its SHA-256 equals the expected
            one, or when no hash is known; one with another hash is replaced only after the
            new file has passed every check.
        progress: ``callback(bytes_done, total_bytes_or_None)``, called once with
            ``bytes_done=0`` and then after every chunk. ``"tqdm"`` (default) draws a bar on
            stderr only when it is a TTY. ``None`` is silent. An exception raised by the
            callback aborts the download.
        expected_sha256: hex SHA-256 the file must have (case-insensitive). ``None`` skips the
            check (unless the registry knows it).
        expected_size: exact size in bytes the file must have. ``None`` skips the check
            (unless the registry knows it).
        timeout: seconds allowed to connect, and for each network read.
        cancel: when this event is set, the download stops at the next chunk and
            :class:`DownloadCancelled` is raised.
        verify: optional ``verify(temporary_path)`` run on the complete, checksum-verified file
            before it is moved into place. If it raises, the file is deleted and
            :class:`DownloadError` is raised.
        chunk_size: bytes per read.

    Returns:
        The final path. It exists and has passed every requested check.

    Raises:
        DownloadError: network/HTTP/I-O failure or a failed ``verify``. The message names the
            URL and the exact path where the file can be placed by hand.
        ChecksumError: size or SHA-256 mismatch (the message states expected and actual).
        DownloadCancelled: ``cancel`` was set.
        KeyError: ``name_or_url`` is neither a URL nor a registry name.
    """
    url, dest, info = _resolve(name_or_url, dest)
    if info is not None:
        expected_sha256 = expected_sha256 if expected_sha256 is not None else info.sha256
        expected_size = expected_size if expected_size is not None else info.size_bytes
    if expected_sha256 is not None:
        expected_sha256 = expected_sha256.strip().lower()
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if cancel is not None and cancel.is_set():
        raise DownloadCancelled(f"download of {url} was cancelled")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create cache folder {dest.parent}: {exc}") from None
    downloader = _Downloader(
        dest, progress, expected_sha256, expected_size, timeout, cancel, verify, chunk_size
    )
    with _dest_lock(dest):
        _QUIET.active = True
        try:  # pooch checks the hash again before it renames the file into place
            pooch.retrieve(
                url,
                known_hash=None if expected_sha256 is None else f"sha256:{expected_sha256}",
                fname=dest.name,
                path=dest.parent,
                downloader=downloader,
            )
        finally:
            _QUIET.active = False
    return dest


def ensure_weights(
    name: str,
    *,
    progress: ProgressArg = "tqdm",
    cancel: threading.Event | None = None,
    verify: Callable[[Path], None] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Return the cached checkpoint ``name``, downloading it into the cache first if needed.

    Args:
        name: registry name (e.g. ``"sam2.1_hiera_tiny"``) or a URL.
        progress: as in :func:`download`.
        cancel: as in :func:`download`.
        verify: ``verify(path)`` run on a freshly downloaded file before it is moved into the
            cache. If it raises, the file is removed. Not run on files already cached.
        timeout: as in :func:`download`.

    Returns:
        Path of the checkpoint file in the cache.

    Raises:
        DownloadError: (and subclasses) as in :func:`download`. Without network the message
            names the URL and the exact cache path to copy the file to by hand.
        KeyError: unknown registry name.
    """
    url, dest, info = _resolve(name, None)
    expected_size = info.size_bytes if info is not None else None
    if _size_ok(dest, expected_size):
        return dest
    with _dest_lock(dest):
        # Another thread may have finished the same download while we waited for the lock.
        if _size_ok(dest, expected_size):
            return dest
        return download(
            name, dest, progress=progress, cancel=cancel, verify=verify, timeout=timeout
        )
