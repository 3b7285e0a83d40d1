"""Paths and URLs through fsspec: local paths or ``s3://`` (s3fs), with ``AWS_ENDPOINT_URL`` honoured.

s3fs goes to real AWS unless it is given an endpoint, so :func:`filesystem` passes ``AWS_ENDPOINT_URL`` (e.g. a
loopback S3 server) explicitly; the endpoint becomes part of fsspec's instance-cache key. Listing caches are off,
so a file another process just wrote is seen.
"""

from __future__ import annotations

import builtins
import os
import uuid
from typing import IO, Any

import fsspec


def is_remote(url: str | os.PathLike) -> bool:
    """True for URLs with a non-local protocol (``s3://`` …)."""
    proto = fsspec.utils.get_protocol(str(url))
    return proto not in ("file", "local")


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


def atomic_write_bytes(url: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``url`` so that readers see either nothing/the old file or the whole new file.

    Local: a temp file in the same folder, then :func:`os.replace`. S3: a single PUT is atomic (an object appears
    whole or not at all), then the object is checked to exist with the right size.
    """
    fs, path = filesystem(url)
    if not is_remote(url):
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
        try:
            with builtins.open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return
    fs.pipe_file(path, data)
    info = fs.info(path)
    if int(info.get("size", -1)) != len(data):
        raise OSError(f"upload of {url} incomplete: {info.get('size')} of {len(data)} bytes visible")

