"""Paths and URLs through fsspec: local paths or ``s3://`` (s3fs), with ``AWS_ENDPOINT_URL`` honoured.

s3fs goes to real AWS unless it is given an endpoint, so :func:`filesystem` passes ``AWS_ENDPOINT_URL`` (e.g. a
loopback S3 server) explicitly; the endpoint becomes part of fsspec's instance-cache key. Listing caches are off,
so a file another process just wrote is seen.
"""

from __future__ import annotations

import builtins
import logging
import os
import time
import uuid
from typing import IO, Any

import fsspec

log = logging.getLogger(__name__)

WRITE_ATTEMPTS = 3
"""Tries of one S3 write, on top of botocore's own retries of throttling and 5xx answers."""


def is_remote(url: str | os.PathLike) -> bool:
    """True for URLs with a non-local protocol (``s3://`` …)."""
    proto = fsspec.utils.get_protocol(str(url))
    return proto not in ("file", "local")


def is_anchored(path: str) -> bool:
    """True for a URL or an absolute local path: one that does not name a place relative to some root."""
    return "://" in path or os.path.isabs(path)


def is_unsupported(url: str | os.PathLike) -> bool:
    """True for a URL of a protocol other than ``s3://`` (no other client is installed)."""
    return is_remote(url) and fsspec.utils.get_protocol(str(url)) != "s3"


def storage_options(url: str | os.PathLike) -> dict[str, Any]:
    """fsspec options for ``url`` (for pandas/pyarrow ``storage_options=``): the S3 endpoint when set."""
    if fsspec.utils.get_protocol(str(url)) in ("s3", "s3a"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        opts: dict[str, Any] = {"use_listings_cache": False}
        if endpoint:
            opts["client_kwargs"] = {"endpoint_url": endpoint}
        return opts
    return {}


def filesystem(url: str | os.PathLike) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem serving ``url`` and the path within it (no protocol for S3, absolute for local)."""
    fs, path = fsspec.core.url_to_fs(str(url), **storage_options(url))
    return fs, path


def join(base: str | os.PathLike, *parts: str) -> str:
    """Join path components with ``/`` (works for URLs and local paths)."""
    out = str(base).rstrip("/")
    for p in parts:
        out = f"{out}/{str(p).strip('/')}"
    return out


def open(url: str | os.PathLike, mode: str = "rb", **kwargs: Any) -> IO:  # noqa: A001 - mirrors fsspec.open
    """Open ``url`` like :func:`open` (local or remote); parent folders are created for local writes."""
    fs, path = filesystem(url)
    if "w" in mode and not is_remote(url):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return fs.open(path, mode, **kwargs)


def exists(url: str | os.PathLike) -> bool:
    """True when ``url`` names an existing file or folder."""
    fs, path = filesystem(url)
    return fs.exists(path)


def atomic_write_bytes(url: str | os.PathLike, data: bytes, *, attempts: int = WRITE_ATTEMPTS) -> None:
    """Write ``data`` to ``url`` so that readers see either nothing/the old file or the whole new file.

    Local: a temp file in the same folder, then :func:`os.replace`. S3: a single PUT is atomic (an object appears
    whole or not at all), then the object is checked to exist with the right size; a transient error
    (:func:`is_transient`) is retried, ``attempts`` tries in all, 0.2 s apart and doubling.

    Raises
    ------
    OSError
        The local write failed, or the upload is not visible whole.
    Exception
        The S3 backend's error, when it is not transient or the last attempt fails.
    """
    fs, path = filesystem(url)
    if not is_remote(url):
        _write_local(path, data)
        return
    for attempt in range(1, attempts + 1):
        try:
            fs.pipe_file(path, data)
            info = fs.info(path)
            if int(info.get("size", -1)) != len(data):
                raise OSError(f"upload of {url} incomplete: {info.get('size')} of {len(data)} bytes visible")
            return
        except Exception as exc:  # noqa: BLE001 - classified by is_transient
            if not is_transient(exc) or attempt == attempts:
                raise
            delay = 0.2 * 2 ** (attempt - 1)
            log.warning("transient error writing %s (attempt %d): %r; retrying in %.1fs", url, attempt, exc, delay)
            time.sleep(delay)


def _write_local(path: str, data: bytes) -> None:
    """Write a hidden temp file beside ``path``, fsync it and rename it into place; the temp file never stays."""
    folder = os.path.dirname(path)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        os.makedirs(folder, exist_ok=True)
        with builtins.open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def is_transient(exc: BaseException) -> bool:
    """Whether a write error is worth retrying (network hiccups, throttling, 5xx), not a denial."""
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    if "EndpointConnectionError" in type(exc).__name__:  # server down: botocore has already retried it
        return False
    return isinstance(exc, (OSError, TimeoutError, ConnectionError)) or type(exc).__module__.startswith(
        ("botocore", "aiobotocore", "aiohttp")
    )
