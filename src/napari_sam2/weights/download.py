"""Safe, atomic checkpoint downloads into a per-user cache.

Only the standard library's :mod:`urllib` is used (``http://``, ``https://`` and ``file://``
URLs). Bytes go to ``<dest>.part`` in chunks and are hashed (SHA-256) as they arrive. The
``.part`` file becomes ``<dest>`` with one :func:`os.replace` only after the size, the hash and
an optional caller-supplied check have all passed. If anything fails or the download is
cancelled, the ``.part`` file is deleted and nothing is left at ``<dest>``. Downloaded bytes are
never executed or unpickled here. Strict loading is the model loader's job.

The cache directory is ``$NAPARI_SAM2_CACHE`` if that is set, otherwise
``platformdirs.user_cache_dir("napari-sam2") / "checkpoints"``. Offline users can place the
official ``.pt`` files there by hand (see :func:`cached_path`).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import platformdirs

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
_USER_AGENT = "napari-sam2 (urllib)"

#: ``progress`` argument: a callback ``(bytes_done, total_bytes_or_None)``, ``"tqdm"`` for a
#: terminal progress bar (shown only when stderr is a TTY), or ``None`` for silence.
ProgressArg = Callable[[int, int | None], None] | Literal["tqdm"] | None


class DownloadError(RuntimeError):
    """A checkpoint could not be downloaded (network, HTTP, verification or I/O failure)."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not match the expected size or SHA-256."""


class DownloadCancelled(DownloadError):
    """The download was cancelled through its ``cancel`` event. Nothing was written."""


# --------------------------------------------------------------------------- cache layout


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

# One lock per destination file so two threads never write the same ``.part`` file.
_DEST_LOCKS: dict[str, threading.RLock] = {}
_DEST_LOCKS_GUARD = threading.Lock()


def _dest_lock(dest: Path) -> threading.RLock:
    key = os.path.normcase(os.path.abspath(dest))
    with _DEST_LOCKS_GUARD:
        return _DEST_LOCKS.setdefault(key, threading.RLock())


def _part_path(dest: Path) -> Path:
    # ``x.pt`` becomes ``x.pt.part``. This avoids Path.with_suffix, which would treat the
    # ".1_hiera_tiny" of a suffix-less "sam2.1_hiera_tiny" as the suffix.
    return dest.with_name(dest.name + ".part")


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
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        if not isinstance(exc.reason, BaseException):
            return str(exc.reason)
        exc = exc.reason
    if isinstance(exc, TimeoutError):
        return f"no response within {timeout:g} s"
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed early after {len(exc.partial)} bytes" + (
            f" ({exc.expected} more expected)" if exc.expected is not None else ""
        )
    return str(exc) or type(exc).__name__


def _open_url(url: str, timeout: float, cancel: threading.Event | None) -> Any:
    """Open ``url`` within ``timeout`` seconds overall, checking ``cancel`` while waiting.

    ``urlopen``'s own timeout covers each socket operation but not name resolution, so the
    call runs in a daemon thread and is abandoned (its response closed) if the deadline
    passes.
    """
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    box: dict[str, Any] = {}
    done = threading.Event()
    abandoned = threading.Event()

    def worker() -> None:
        try:
            resp = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (scheme ok)
        except BaseException as exc:  # handed to the caller thread
            box["error"] = exc
        else:
            if abandoned.is_set():
                resp.close()
            else:
                box["response"] = resp
        finally:
            done.set()

    threading.Thread(target=worker, name="napari-sam2-connect", daemon=True).start()
    deadline = time.monotonic() + timeout
    while not done.wait(0.05):
        if cancel is not None and cancel.is_set():
            abandoned.set()
            raise DownloadCancelled(f"download of {url} was cancelled")
        if time.monotonic() >= deadline:
            abandoned.set()
            raise TimeoutError(f"timed out after {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["response"]


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


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:  # pragma: no cover - e.g. a Windows file lock; best effort only
        pass


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
    """Download a checkpoint atomically, verifying size and SHA-256 while streaming.

    Args:
        name_or_url: a registry name (``"sam2.1_hiera_tiny"``) or a URL (``https://``,
            ``http://`` or ``file://``). For a registry name the registry's URL, size and hash
            are used unless overridden here.
        dest: final file path (or an existing directory to put it in). Defaults to the cache:
            ``cache_dir() / <file name>``. Parent directories are created.
        progress: ``callback(bytes_done, total_bytes_or_None)``, called once with
            ``bytes_done=0`` and then after every chunk. ``"tqdm"`` (default) draws a bar on
            stderr only when it is a TTY. ``None`` is silent. An exception raised by the
            callback aborts the download.
        expected_sha256: hex SHA-256 the file must have (case-insensitive). ``None`` skips the
            check (unless the registry knows it).
        expected_size: exact size in bytes the file must have. ``None`` skips the check
            (unless the registry knows it).
        timeout: seconds allowed to connect and get a response, and for each network read.
        cancel: when this event is set, the download stops at the next chunk (or while
            connecting) and :class:`DownloadCancelled` is raised.
        verify: optional ``verify(part_path)`` run on the complete, checksum-verified file
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

    with _dest_lock(dest):
        return _download_locked(
            url,
            dest,
            progress,
            expected_sha256,
            expected_size,
            timeout,
            cancel,
            verify,
            chunk_size,
        )


def _download_locked(
    url: str,
    dest: Path,
    progress: ProgressArg,
    expected_sha256: str | None,
    expected_size: int | None,
    timeout: float,
    cancel: threading.Event | None,
    verify: Callable[[Path], None] | None,
    chunk_size: int,
) -> Path:
    part = _part_path(dest)

    def fail(what: str, exc: BaseException | None = None) -> DownloadError:
        reason = f": {_reason(exc, timeout)}" if exc is not None else ""
        return DownloadError(
            f"Could not download {dest.name} from {url}{what}{reason}.\n"
            + _hint(url, dest, expected_size)
        )

    if cancel is not None and cancel.is_set():
        raise DownloadCancelled(f"download of {url} was cancelled")

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create cache folder {dest.parent}: {exc}") from None

    try:
        response = _open_url(url, timeout, cancel)
    except DownloadCancelled:
        raise
    except (OSError, ValueError, http.client.HTTPException) as exc:
        # HTTPError, URLError, timeouts, refused connections, bad URLs: one clear message.
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()
        raise fail("", exc) from None

    callback, close_progress = _make_progress(progress, dest.name)
    hasher = hashlib.sha256()
    done = 0
    try:
        with response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and expected_size is not None and total != expected_size:
                raise ChecksumError(
                    f"Size mismatch for {url}: expected {expected_size} bytes, the server "
                    f"reports {total} bytes. Nothing was written to {dest}."
                )
            if total is None:
                total = expected_size
            if callback is not None:
                callback(0, total)
            with open(part, "wb") as fh:
                while True:
                    if cancel is not None and cancel.is_set():
                        raise DownloadCancelled(f"download of {url} was cancelled")
                    try:
                        chunk = response.read(chunk_size)
                    except (OSError, http.client.HTTPException) as exc:
                        raise fail(f" (interrupted after {done} bytes)", exc) from None
                    if not chunk:
                        break
                    fh.write(chunk)
                    hasher.update(chunk)
                    done += len(chunk)
                    if expected_size is not None and done > expected_size:
                        raise ChecksumError(
                            f"Size mismatch for {url}: expected {expected_size} bytes, "
                            f"received more than that ({done} so far)."
                        )
                    if callback is not None:
                        callback(done, total)
                    if cancel is not None and cancel.is_set():
                        raise DownloadCancelled(f"download of {url} was cancelled")
                fh.flush()
                os.fsync(fh.fileno())
        close_progress()

        if length and length.isdigit() and done != int(length):
            raise fail(f" (connection closed after {done} of {int(length)} bytes)")
        if expected_size is not None and done != expected_size:
            raise ChecksumError(
                f"Size mismatch for {url}: expected {expected_size} bytes, got {done} bytes."
            )
        actual_sha = hasher.hexdigest()
        if expected_sha256 is not None and actual_sha != expected_sha256:
            raise ChecksumError(
                f"SHA-256 mismatch for {url}: expected {expected_sha256}, got {actual_sha}. "
                "The file may be corrupted or the server may have sent something else. "
                "It was deleted."
            )
        if verify is not None:
            try:
                verify(part)
            except Exception as exc:
                raise DownloadError(
                    f"Downloaded file from {url} failed verification and was deleted: {exc}"
                ) from exc
        os.replace(part, dest)
    except BaseException:
        close_progress()
        _unlink_quietly(part)
        raise
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
