"""The Parquet result store: every trial of every sweep, local path or ``s3://bucket/prefix``.

Layout under the root::

    trials/method=<m>/sweep=<sweep_id>/<trial_id>.parquet    one row per trial
    history/method=<m>/sweep=<sweep_id>/<trial_id>.parquet   one row per report
    artifacts/method=<m>/sweep=<sweep_id>/<trial_id>/...     wavs, pngs, checkpoint.pt
    sweeps/method=<m>/<sweep_id>.json                        the sweep manifest

Every file is written whole and atomically and named by its trial id: a local write goes to a hidden
temporary file in the same folder and is renamed into place; an S3 write is one PUT of the complete
object (retried on transient errors). Concurrent writers therefore never collide, and writing a trial
again (after a resume) replaces its row instead of adding one.

``method`` is not stored inside the files: it is the ``method=`` partition of the path, which readers
restore (``Store.trials()``, ``pyarrow.dataset(..., partitioning="hive")``, DuckDB's
``read_parquet('…/trials/**/*.parquet', hive_partitioning=true, union_by_name=true)``); storing it twice
would make pyarrow's hive discovery refuse the tree. Column types are kept stable: ``metric.*``, ``wall_s``
and ``time_s`` are float64, ``steps``/``seed``/``step`` int64, timestamps UTC, ``config.*`` keep their
Python type (bool, int64, float64, string; lists and dicts as JSON strings). On read, per-file tables are
unified (int + float → float, anything else that disagrees → string).

Paths inside the store are relative to its root: a row's ``artifact.dir``, ``artifact.audio``,
``artifact.spectrogram`` and ``artifact.checkpoint`` are stored as ``artifacts/method=…/…`` and read back
(:meth:`Store.trials`) as URIs under the root the store is opened at, so a store copied, moved or synced to S3 and
back reads and resumes where it now is. (Rows written before this rule hold absolute URIs, read as they are.)
A file that is not readable Parquet (cut short, overwritten) is skipped with a warning naming it, so one bad file
never hides the rest of the store.

Reading an empty or missing store through this API gives an empty frame (``audiostyle.best`` turns that
into a clear :class:`~audiostyle.errors.AudiostyleError`). Credentials are never written: the root URL
cannot carry them, and manifest keys that look like secrets are dropped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from audiostyle import fsio
from audiostyle.errors import AudiostyleError

log = logging.getLogger(__name__)

DEFAULT_ROOT = "results"
"""The store root when none is given (``--store``, ``sweep.run(store=)``): ``results`` under the working folder."""

METRIC_PREFIX, CONFIG_PREFIX, ARTIFACT_PREFIX = "metric.", "config.", "artifact."
"""Prefixes of the per-name columns: ``metric.<name>`` (float64), ``config.<field>``, ``artifact.<name>``."""

ARTIFACT_DIR, ARTIFACT_AUDIO, ARTIFACT_SPECTROGRAM = "artifact.dir", "artifact.audio", "artifact.spectrogram"
ARTIFACT_CHECKPOINT, ARTIFACT_CLIPS = "artifact.checkpoint", "artifact.clips"
"""The artifact columns of a trial row: its folder, its first audio example and figure, its last checkpoint (paths
inside the store) and the dataset clips behind its examples (JSON, :mod:`audiostyle.methods.examples`)."""

FINISHED, FAILED, STOPPED = "finished", "failed", "stopped"
STATUSES = (FINISHED, FAILED, STOPPED)
"""Trial statuses (the ``status`` column); ``stopped`` = early-stopped by the scheduler."""

USABLE_STATUSES = (FINISHED, STOPPED)
"""Statuses whose metrics are valid (a stopped trial's are those of its last report)."""

METRICS_VERSION = "metrics_version"
"""The column of the metrics version a trial was scored with (:data:`audiostyle.metrics.SCORE_VERSION`;
null in rows written before it was recorded): scores of different versions are not comparable."""

TRIAL_COLUMNS: dict[str, pa.DataType] = {
    "trial_id": pa.string(),
    "sweep_id": pa.string(),
    "method": pa.string(),
    "status": pa.string(),
    "error": pa.string(),
    "started_at": pa.timestamp("us", tz="UTC"),
    "ended_at": pa.timestamp("us", tz="UTC"),
    "wall_s": pa.float64(),
    "steps": pa.int64(),
    "device": pa.string(),
    "seed": pa.int64(),
    METRICS_VERSION: pa.int64(),
    ARTIFACT_DIR: pa.string(),
    ARTIFACT_AUDIO: pa.string(),
    ARTIFACT_SPECTROGRAM: pa.string(),
    ARTIFACT_CHECKPOINT: pa.string(),
    "objective.metric": pa.string(),
    "objective.mode": pa.string(),
}
"""The fixed columns of a trial row and their types (``config.*`` and ``metric.*`` come on top)."""

HISTORY_COLUMNS: dict[str, pa.DataType] = {
    "trial_id": pa.string(),
    "sweep_id": pa.string(),
    "method": pa.string(),
    "step": pa.int64(),
    "time_s": pa.float64(),
}
"""The fixed columns of a history row (``metric.*`` float64 columns come on top)."""


PATH_COLUMNS = (ARTIFACT_DIR, ARTIFACT_AUDIO, ARTIFACT_SPECTROGRAM, ARTIFACT_CHECKPOINT)
"""Trial columns holding a path inside the store: stored relative to its root, read back as URIs under it."""

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_SECRET_KEY = re.compile(r"secret|password|passwd|token|credential|access_key|session_key", re.IGNORECASE)
_METHOD_DIR = re.compile(r"/method=([^/]+)/")


def metric_column(name: str) -> str:
    """The column of metric ``name`` (``metric.<name>``)."""
    return METRIC_PREFIX + name


def config_column(name: str) -> str:
    """The column of config field ``name`` (``config.<name>``)."""
    return CONFIG_PREFIX + name


# -- filesystem -----------------------------------------------------------------------------------
def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for a store URL and the path inside it (see :func:`audiostyle.fsio.filesystem`).

    ``s3://`` uses s3fs with the endpoint from ``AWS_ENDPOINT_URL`` and credentials from the usual AWS
    settings; anything without a protocol is a local path. Other protocols raise :class:`AudiostyleError`.
    """
    _check_protocol(url)
    return fsio.filesystem(url)


def _check_protocol(url: str) -> None:
    if fsio.is_unsupported(url):
        raise AudiostyleError(f"store root {url!r}: only local paths and s3://bucket/prefix are supported.")


def _check_name(kind: str, value: Any) -> str:
    value = str(value)
    if not _SAFE_NAME.match(value) or "=" in value:
        raise AudiostyleError(
            f"{kind}={value!r} cannot name a store folder: use letters, digits, '_', '-' and '.' only."
        )
    return value


# -- value normalisation --------------------------------------------------------------------------
def storable_value(value: Any) -> Any:
    """A JSON/Arrow-friendly Python value: numpy scalars unwrapped, paths as str, datetimes as UTC."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc) if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return value


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__, **dataclasses.asdict(value)}
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, np.ndarray):
        return value.tolist()
    plain = storable_value(value)
    return plain if plain is not value else str(value)


def _timestamp(value: Any) -> dt.datetime | None:
    """A UTC datetime from a datetime, POSIX seconds, or an ISO string."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, (int, float, np.number)):
        return dt.datetime.fromtimestamp(float(value), tz=dt.timezone.utc)
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return storable_value(value)


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _config_value(value: Any) -> tuple[Any, pa.DataType]:
    """A config value and its Arrow type: bool, int64, float64, string (JSON for containers)."""
    value = storable_value(value)
    if value is None:  # string: the type every reader can cast to any other when all values are null
        return None, pa.string()
    if isinstance(value, bool):
        return value, pa.bool_()
    if isinstance(value, int):
        return value, pa.int64()
    if isinstance(value, float):
        return value, pa.float64()
    if isinstance(value, str):
        return value, pa.string()
    return json.dumps(value, default=_json_default, sort_keys=True), pa.string()


def _flatten(row: Mapping[str, Any]) -> dict[str, Any]:
    """``{"config": {"a": 1}}`` → ``{"config.a": 1}``; keys already dotted stay as they are."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, Mapping) and key in ("config", "metric", "metrics", "artifact", "objective"):
            prefix = "metric" if key == "metrics" else key
            flat.update({f"{prefix}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def trial_table(row: Mapping[str, Any]) -> pa.Table:
    """The one-row Arrow table of a trial, with the store's column types.

    Parameters
    ----------
    row : mapping
        Keys of :data:`TRIAL_COLUMNS` plus ``config.<field>`` and ``metric.<name>`` (or nested
        ``config``/``metrics``/``artifact``/``objective`` dicts). ``trial_id``, ``sweep_id``, ``method``
        are required; missing fixed columns are null.
    """
    flat = _flatten(row)
    for key in ("trial_id", "sweep_id", "method"):
        if flat.get(key) in (None, ""):
            raise AudiostyleError(f"trial row lacks {key!r}: every trial row needs trial_id, sweep_id and method.")
    status = flat.get("status")
    if status is not None and status not in STATUSES:
        raise AudiostyleError(f"trial status={status!r} is not one of {', '.join(STATUSES)}.")
    prefixes = (CONFIG_PREFIX, METRIC_PREFIX, ARTIFACT_PREFIX)
    unknown = [k for k in flat if k not in TRIAL_COLUMNS and not k.startswith(prefixes)]
    if unknown:
        raise AudiostyleError(
            f"trial row has unknown column(s) {', '.join(sorted(unknown))}: use config.*, metric.*, artifact.* "
            f"or one of {', '.join(TRIAL_COLUMNS)}."
        )
    columns: dict[str, pa.Array] = {}
    for name, typ in TRIAL_COLUMNS.items():
        value = flat.get(name)
        if pa.types.is_timestamp(typ):
            value = _timestamp(value)
        elif pa.types.is_floating(typ):
            value = _float(value)
        elif pa.types.is_integer(typ) and value is not None:
            value = int(value)
        elif value is not None:
            value = str(storable_value(value))
        columns[name] = pa.array([value], type=typ)
    for name in sorted(k for k in flat if k not in TRIAL_COLUMNS):
        if name.startswith(METRIC_PREFIX):
            columns[name] = pa.array([_float(storable_value(flat[name]))], type=pa.float64())
        elif name.startswith(ARTIFACT_PREFIX):
            value = flat[name]
            columns[name] = pa.array([None if value is None else str(storable_value(value))], type=pa.string())
        else:
            value, typ = _config_value(flat[name])
            columns[name] = pa.array([value], type=typ)
    return pa.table(columns)


def history_table(ids: Mapping[str, str], history: Iterable[Mapping[str, Any]]) -> pa.Table:
    """The history table of one trial: one row per report.

    Parameters
    ----------
    ids : mapping
        ``trial_id``, ``sweep_id``, ``method``.
    history : iterable of mappings
        Each ``{"step": int, "time_s": float (seconds since the trial started, optional), <metric>: float}``;
        metric keys may or may not carry the ``metric.`` prefix.
    """
    rows = [dict(h) for h in history]
    metric_names = sorted(
        {k if k.startswith(METRIC_PREFIX) else metric_column(k) for r in rows for k in r if k not in HISTORY_COLUMNS}
    )
    columns: dict[str, pa.Array] = {
        "trial_id": pa.array([ids["trial_id"]] * len(rows), type=pa.string()),
        "sweep_id": pa.array([ids["sweep_id"]] * len(rows), type=pa.string()),
        "method": pa.array([ids["method"]] * len(rows), type=pa.string()),
        "step": pa.array([int(r["step"]) for r in rows], type=pa.int64()),
        "time_s": pa.array([_float(r.get("time_s")) for r in rows], type=pa.float64()),
    }
    for name in metric_names:
        short = name[len(METRIC_PREFIX) :]
        values = [_float(storable_value(r.get(name, r.get(short)))) for r in rows]
        columns[name] = pa.array(values, type=pa.float64())
    return pa.table(columns)


def _unify(tables: list[pa.Table]) -> pa.Table:
    """Concatenate per-file tables whose columns may differ in presence or type.

    Missing and all-null columns take the type of the others; int and float become float64; other mixes
    (bool, number, string) become string.
    """
    tables = [t for t in tables if t.num_columns]
    if not tables:
        return pa.table({})
    types: dict[str, set[pa.DataType]] = {}
    for table in tables:
        for field, column in zip(table.schema, table.columns):
            if column.null_count < len(column):  # an all-null column takes any type
                types.setdefault(field.name, set()).add(field.type)
    target: dict[str, pa.DataType] = {}
    for name, found in types.items():
        if len(found) == 1:
            target[name] = next(iter(found))
        elif all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in found):
            target[name] = pa.float64()
        else:
            target[name] = pa.string()
    fixed = []
    for table in tables:
        for i, field in enumerate(table.schema):
            want = target.get(field.name)
            if want is not None and field.type != want:
                column = table.column(i)
                if pa.types.is_string(want) and pa.types.is_boolean(field.type):
                    column = pa.array([None if v is None else str(v) for v in column.to_pylist()], type=want)
                else:
                    column = column.cast(want)
                table = table.set_column(i, field.name, column)
        fixed.append(table)
    return pa.concat_tables(fixed, promote_options="permissive")


# -- the store ------------------------------------------------------------------------------------
class Store:
    """A Parquet result store at a local path or ``s3://bucket/prefix``.

    Parameters
    ----------
    root : str
        Local folder (created on first write) or ``s3://bucket/prefix`` (the bucket must exist; the
        endpoint comes from ``AWS_ENDPOINT_URL``, credentials from the usual AWS settings).

    Notes
    -----
    Picklable (the filesystem is rebuilt on the other side), so a Ray driver callback can hold one.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = str(root).rstrip("/") or "/"
        _check_protocol(self.root)
        self.is_remote = fsio.is_remote(self.root)
        self._fs: fsspec.AbstractFileSystem | None = None
        self._base = filesystem(self.root)[1] if not self.is_remote else self.root[len("s3://") :]

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fs": None}

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem holding the store (created on first use)."""
        if self._fs is None:
            self._fs = filesystem(self.root)[0]
        return self._fs

    # -- paths ------------------------------------------------------------------------------------
    def _path(self, *parts: str) -> str:
        return "/".join([self._base.rstrip("/"), *parts])

    def uri(self, path: str) -> str:
        """The URI a user (or :meth:`load_checkpoint`) opens for an fs path inside the store."""
        return f"s3://{path}" if self.is_remote else path

    def relative(self, uri: Any) -> Any:
        """A URI (or path) inside this store relative to its root (``artifacts/…``); anything else as it is."""
        prefix = self.uri(self._base.rstrip("/")) + "/"
        return uri[len(prefix):] if isinstance(uri, str) and uri.startswith(prefix) else uri

    def absolute(self, path: Any) -> Any:
        """The URI under this store's root of a path :meth:`relative` made; URIs, absolute paths and nulls as they are."""
        if not isinstance(path, str) or not path or fsio.is_anchored(path):
            return path
        return self.uri(self._path(path))

    def _partition(self, table: str, method: str, sweep_id: str) -> str:
        return self._path(table, f"method={_check_name('method', method)}", f"sweep={_check_name('sweep', sweep_id)}")

    # -- low-level atomic write ---------------------------------------------------------------------
    def _write_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` whole or not at all (:func:`audiostyle.fsio.atomic_write_bytes`)."""
        if not self.is_remote:
            try:
                fsio.atomic_write_bytes(path, data)
            except OSError as exc:
                raise AudiostyleError(
                    f"cannot write {path} in store {self.root!r}: {exc.strerror or exc}. "
                    f"Check that the folder is writable and the disk has free space, or pass another --store."
                ) from exc
            return
        try:
            fsio.atomic_write_bytes(self.uri(path), data)
        except Exception as exc:  # noqa: BLE001 - fsio retried the transient ones
            raise AudiostyleError(
                f"cannot write s3://{path} in store {self.root!r}: {exc!r}. Check that the bucket exists, "
                f"the AWS credentials allow writing, and AWS_ENDPOINT_URL points at the S3 server."
            ) from exc

    @staticmethod
    def _parquet_bytes(table: pa.Table) -> bytes:
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        return buffer.getvalue()

    # -- writes ------------------------------------------------------------------------------------
    def write_sweep(self, manifest: Mapping[str, Any]) -> None:
        """Write (or replace) a sweep's manifest at ``sweeps/method=<m>/<sweep_id>.json``.

        Parameters
        ----------
        manifest : mapping
            At least ``method`` and ``sweep_id``; usually ``objectives`` (``[{metric, mode}]``), ``space``,
            ``args``, ``started_at``. Space dimensions (dataclasses) become ``{"type": "Float", ...}``.
            Keys that look like secrets (``*secret*``, ``*token*``, ``*password*``, ...) are dropped.
        """
        for key in ("method", "sweep_id"):
            if not manifest.get(key):
                raise AudiostyleError(f"sweep manifest lacks {key!r}: it needs method and sweep_id.")
        clean = _scrub(dict(manifest))
        path = self._path("sweeps", f"method={_check_name('method', manifest['method'])}",
                          f"{_check_name('sweep', manifest['sweep_id'])}.json")
        self._write_bytes(path, json.dumps(clean, default=_json_default, indent=2, sort_keys=True).encode())

    def write_trial(self, row: Mapping[str, Any], history: Iterable[Mapping[str, Any]] = ()) -> None:
        """Write (or replace) one trial: its history file first, then its row.

        Parameters
        ----------
        row : mapping
            The trial row (see :func:`trial_table`).
        history : iterable of mappings
            One mapping per report (see :func:`history_table`); empty writes no history file.
        """
        flat = _flatten(row)
        table = trial_table({**flat, **{k: self.relative(flat[k]) for k in PATH_COLUMNS if k in flat}})
        ids = {k: table.column(k)[0].as_py() for k in ("trial_id", "sweep_id", "method")}
        name = f"{_check_name('trial_id', ids['trial_id'])}.parquet"
        history = list(history)
        if history:
            self._write_bytes(
                f"{self._partition('history', ids['method'], ids['sweep_id'])}/{name}",
                self._parquet_bytes(history_table(ids, history).drop_columns(["method"])),
            )
        self._write_bytes(
            f"{self._partition('trials', ids['method'], ids['sweep_id'])}/{name}",
            self._parquet_bytes(table.drop_columns(["method"])),
        )
        log.debug("stored trial %s of %s/%s", ids["trial_id"], ids["method"], ids["sweep_id"])

    def artifact_dir(self, method: str, sweep_id: str, trial_id: str) -> str:
        """The URI of a trial's artifact folder (``artifacts/method=…/sweep=…/<trial_id>``)."""
        return self.uri(f"{self._partition('artifacts', method, sweep_id)}/{_check_name('trial_id', trial_id)}")

    def put_artifacts(self, method: str, sweep_id: str, trial_id: str, local_dir: str | os.PathLike) -> dict[str, str]:
        """Copy every file under ``local_dir`` into the trial's artifact folder.

        Returns
        -------
        dict
            Relative file name (``/``-separated) → URI in the store. Files are written atomically; a
            ``local_dir`` that already is the artifact folder is listed, not copied.
        """
        local_dir = Path(local_dir)
        target = f"{self._partition('artifacts', method, sweep_id)}/{_check_name('trial_id', trial_id)}"
        if not local_dir.is_dir():
            return {}
        same = not self.is_remote and os.path.realpath(local_dir) == os.path.realpath(target)
        uris: dict[str, str] = {}
        for file in sorted(p for p in local_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
            rel = file.relative_to(local_dir).as_posix()
            path = f"{target}/{rel}"
            if not same:
                self._write_bytes(path, file.read_bytes())
            uris[rel] = self.uri(path)
        return uris

    # -- reads -------------------------------------------------------------------------------------
    def _files(self, table: str, method: str | None, sweep: str | None, pattern: str) -> list[str]:
        parts = [table, f"method={_check_name('method', method)}" if method else "method=*",
                 f"sweep={_check_name('sweep', sweep)}" if sweep else "sweep=*", pattern]
        return self._glob(self._path(*parts))

    def _glob(self, pattern: str) -> list[str]:
        """Visible files matching ``pattern``; [] when the root is missing; unreachable → AudiostyleError."""
        try:
            found = self.fs.glob(pattern)
        except FileNotFoundError:
            return []
        except Exception as exc:  # noqa: BLE001 - network/permission errors of any fsspec backend
            raise self._unreadable(exc) from exc
        return sorted(p for p in found if not os.path.basename(p).startswith("."))

    def _cat(self, paths: list[str]) -> dict[str, bytes]:
        try:
            return self.fs.cat(paths) if self.is_remote else {p: Path(p).read_bytes() for p in paths}
        except Exception as exc:  # noqa: BLE001
            raise self._unreadable(exc) from exc

    def _unreadable(self, exc: BaseException) -> AudiostyleError:
        return AudiostyleError(
            f"cannot read the store {self.root!r}: {exc!r}. Check the path"
            + (", that AWS_ENDPOINT_URL points at a running S3 server and the AWS credentials allow reading."
               if self.is_remote else " and its permissions.")
        )

    def _read_parquet(self, paths: list[str]) -> pd.DataFrame:
        if not paths:
            return pd.DataFrame()
        blobs = self._cat(paths)
        tables = []
        for path in paths:
            try:
                table = pq.read_table(io.BytesIO(blobs[path]))
            except (pa.ArrowException, OSError) as exc:
                log.warning("skipping %s: not a readable Parquet file (%s). Delete it, or re-run its trial.",
                            self.uri(path), exc)
                continue
            method = _METHOD_DIR.search(path).group(1)
            tables.append(table.add_column(2, "method", pa.array([method] * table.num_rows, type=pa.string())))
        return _unify(tables).to_pandas()

    def trials(self, method: str | None = None, sweep: str | None = None) -> pd.DataFrame:
        """All trial rows (optionally of one method and/or sweep), one row per trial.

        Returns an empty frame when the store or the partition does not exist.
        """
        frame = self._read_parquet(self._files("trials", method, sweep, "*.parquet"))
        if frame.empty:
            return pd.DataFrame(columns=list(TRIAL_COLUMNS))
        for column in PATH_COLUMNS:
            if column in frame:
                frame[column] = frame[column].map(self.absolute)
        return frame.sort_values(["method", "sweep_id", "trial_id"], ignore_index=True)

    def history(self, method: str | None = None, sweep: str | None = None, trial: str | None = None) -> pd.DataFrame:
        """Per-report rows (``trial_id``, ``sweep_id``, ``method``, ``step``, ``time_s``, ``metric.*``).

        Returns an empty frame when nothing matches.
        """
        pattern = f"{_check_name('trial_id', trial)}.parquet" if trial else "*.parquet"
        frame = self._read_parquet(self._files("history", method, sweep, pattern))
        if frame.empty:
            return pd.DataFrame(columns=list(HISTORY_COLUMNS))
        return frame.sort_values(["method", "sweep_id", "trial_id", "step"], ignore_index=True)

    def sweeps(self, method: str | None = None) -> list[dict[str, Any]]:
        """The sweep manifests (optionally of one method), sorted by method and sweep id."""
        parts = ["sweeps", f"method={_check_name('method', method)}" if method else "method=*", "*.json"]
        paths = self._glob(self._path(*parts))
        blobs = self._cat(paths) if paths else {}
        manifests = []
        for path in paths:
            try:
                manifests.append(json.loads(blobs[path]))
            except ValueError as exc:
                log.warning("skipping %s: not a readable sweep manifest (%s). Delete it, or restore it from a copy.",
                            self.uri(path), exc)
        return sorted(manifests, key=lambda m: (m.get("method", ""), m.get("sweep_id", "")))

    def load_checkpoint(self, uri: str) -> dict[str, Any]:
        """Load a trial's ``torch.save``d state (``artifact.checkpoint``) onto the CPU.

        Loaded with ``weights_only=True`` (tensors, numbers, strings, containers and numpy arrays).
        Raises :class:`AudiostyleError` when the URI is empty or the file is missing.
        """
        import torch

        if not uri or (isinstance(uri, float) and math.isnan(uri)):
            raise AudiostyleError("this trial has no checkpoint (artifact.checkpoint is empty): pick another trial.")
        fs, path = filesystem(uri) if (fsio.is_remote(uri) or not self.is_remote) else (self.fs, uri)
        try:
            with fs.open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError as exc:
            raise AudiostyleError(f"checkpoint {uri!r} is missing from the store: was the artifact folder moved?") from exc
        # weights_only: a checkpoint is data (tensors, numbers, strings, numpy arrays), never code to run.
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _numpy_globals() -> list[Any]:
    """The numpy names a checkpoint holding arrays and scalars needs under ``weights_only=True``."""
    dtypes = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.float16, np.float32, np.float64]
    return [
        np._core.multiarray._reconstruct,
        np._core.multiarray.scalar,
        np.ndarray,
        np.dtype,
        *(type(np.dtype(t)) for t in dtypes),
    ]


def _scrub(value: Any) -> Any:
    """Drop mapping keys that look like secrets, recursively."""
    if isinstance(value, Mapping):
        return {k: _scrub(v) for k, v in value.items() if not _SECRET_KEY.search(str(k))}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value
