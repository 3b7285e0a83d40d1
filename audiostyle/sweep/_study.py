"""Every sweep's Optuna study kept in the store, with each trial's audio and figure as Optuna artifacts.

The searcher's study (``study_name`` = the sweep id) lives in the store's Optuna journal, :data:`JOURNAL`
(``optuna.storages.JournalStorage``), and each trial's wavs and pngs in :data:`ARTIFACTS` (Optuna's artifact
store), so ``python -m audiostyle.dashboard --store <store>`` (optuna-dashboard) shows every sweep's history,
importances and Pareto front, and plays each trial's content, style, output and true target.

Only the driver writes them (the searcher runs there). A local store uses Optuna's ``JournalFileBackend``
(file-locked) and ``FileSystemArtifactStore``; an ``s3://`` store the fsspec twins below, which rewrite the
journal object on every append (S3 has no appends) and so assume one sweep at a time writes to that store.
Ray Tune pickles the searcher with its study in every experiment snapshot; the journal storage pickles as its
backend (a path or URL) and replays the journal when loaded, so a resumed sweep continues the same study.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Mapping

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend, JournalFileBackend

from audiostyle import fsio
from audiostyle.metrics import COMMON_METRICS
from audiostyle.sweep._scratch import scratch

JOURNAL = "optuna/journal.log"
"""The store's Optuna journal (every sweep's study), relative to the store root."""
ARTIFACTS = "optuna/artifacts"
"""The store's Optuna artifact folder, relative to the store root."""
MIMETYPES = {".wav": "audio/wav", ".png": "image/png"}
"""The artifacts uploaded for the dashboard, by suffix (checkpoints and indexes stay in the store only)."""


class FsspecJournalBackend(BaseJournalBackend):
    """An Optuna journal in one object of an fsspec filesystem (``s3://``): one JSON log per line."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _lines(self) -> list[str]:
        fs, path = fsio.filesystem(self.url)
        try:
            return fs.cat_file(path).decode("utf-8").splitlines()
        except FileNotFoundError:
            return []

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        """The logs from number ``log_number_from`` on."""
        return [json.loads(line) for line in self._lines()[log_number_from:]]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Append ``logs`` (the whole object is rewritten)."""
        lines = self._lines() + [json.dumps(entry, separators=(",", ":")) for entry in logs]
        fs, path = fsio.filesystem(self.url)
        fs.pipe_file(path, ("\n".join(lines) + "\n").encode("utf-8"))


class FsspecArtifactStore:
    """Optuna's artifact store protocol over an fsspec folder (``s3://bucket/prefix``)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _path(self, artifact_id: str) -> tuple[Any, str]:
        fs, path = fsio.filesystem(f"{self.url}/{artifact_id}")
        return fs, path

    def open_reader(self, artifact_id: str) -> BinaryIO:
        fs, path = self._path(artifact_id)
        try:
            return fs.open(path, "rb")
        except FileNotFoundError as exc:
            raise optuna.artifacts.exceptions.ArtifactNotFound(f"no artifact {artifact_id} in {self.url}") from exc

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        fs, path = self._path(artifact_id)
        fs.pipe_file(path, content_body.read())

    def remove(self, artifact_id: str) -> None:
        fs, path = self._path(artifact_id)
        fs.rm(path)


def _url(store_root: str, relative: str) -> str:
    return fsio.join(str(store_root), relative)


def journal_storage(store_root: str) -> JournalStorage:
    """The store's Optuna storage (:data:`JOURNAL`; its folder created for a local store)."""
    url = _url(store_root, JOURNAL)
    if fsio.is_remote(url):
        return JournalStorage(FsspecJournalBackend(url))
    Path(url).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(url))


def artifact_store(store_root: str) -> Any:
    """The store's Optuna artifact store (:data:`ARTIFACTS`)."""
    url = _url(store_root, ARTIFACTS)
    if fsio.is_remote(url):
        return FsspecArtifactStore(url)
    Path(url).mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(url)


def record_trial(store_root: str, trial: optuna.Trial, uris: Mapping[str, str],
                 metrics: Mapping[str, float] | None = None) -> int:
    """Keep a running study trial's final common metrics (the headline's parts, shown per trial in the dashboard) as
    user attributes, and upload its wavs and pngs; how many were uploaded. (The searcher named the study trial by
    its Ray trial when it was asked.)

    Call it before the trial is told (Optuna ignores attributes set on a finished trial). ``uris``: the trial's
    artifacts in the store (``{relative name: URI}``, the trial's ``trial.artifacts``); ``metrics``: its final
    metrics by name.
    """
    for name in COMMON_METRICS:
        value = (metrics or {}).get(name)
        if isinstance(value, (int, float)) and math.isfinite(value):
            trial.set_user_attr(name, round(float(value), 4))
    wanted = {name: uri for name, uri in sorted(uris.items()) if Path(name).suffix in MIMETYPES}
    if not wanted:
        return 0
    target = artifact_store(store_root)
    with scratch("artifacts") as tmp:
        for name, uri in wanted.items():
            fs, path = fsio.filesystem(uri)
            local = tmp / Path(name).name
            local.write_bytes(fs.cat_file(path))
            upload_artifact(artifact_store=target, file_path=str(local), study_or_trial=trial,
                            mimetype=MIMETYPES[local.suffix])
    return len(wanted)


def fail_unrun(store_root: str, sweep_id: str) -> int:
    """FAIL the trials of the sweep's study still RUNNING once the sweep has ended: asked by a driver that was
    stopped before it ran them, and not taken up after the resume. How many; 0 when the sweep has no study
    (PBT searches without Optuna)."""
    storage = journal_storage(store_root)
    if sweep_id not in optuna.study.get_all_study_names(storage):
        return 0
    study = optuna.load_study(study_name=sweep_id, storage=storage)
    unrun = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in unrun:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return len(unrun)
