"""Dataset layouts on disk or S3: find the audio files of each domain and fingerprint them.

Layouts (``layout="auto"`` tries them in this order):

* ``gtzan``: ``genres_original/<genre>/<genre>.000NN.wav`` (Kaggle GTZAN, also under ``Data/``) or the older
  ``genres/<genre>/<genre>.000NN.au``; domains are genres.
* ``irmas``: ``IRMAS-TrainingData/<code>/*.wav``; domains are the instrument codes (``pia``, ``gel``, …), and
  ``domains=`` also accepts names (``piano``, ``electric_guitar``).
* ``folder``: ``<root>/<domain>/<files>``, one folder per domain.

A marker ``audiostyle-paired.json`` beside the domain folders (the folder root, or ``IRMAS-TrainingData/``; written
by :func:`audiostyle.data.synth.render_demo` and :func:`audiostyle.data.bench.render_bench`) says that files of the
same stem in different domains render the same content (paired: clip k of stem s pairs with clip k of stem s).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass
from typing import Sequence

from audiostyle import fsio
from audiostyle.audio import AUDIO_EXTENSIONS
from audiostyle.errors import AudiostyleError

LAYOUTS = ("auto", "gtzan", "irmas", "folder")
#: Marker file beside the domain folders that makes the tree paired (pair keys from file stems); see ``render_demo``.
PAIRED_MARKER = "audiostyle-paired.json"

#: IRMAS instrument codes → names accepted in ``domains=``.
IRMAS_CODES: dict[str, str] = {
    "cel": "cello",
    "cla": "clarinet",
    "flu": "flute",
    "gac": "acoustic_guitar",
    "gel": "electric_guitar",
    "org": "organ",
    "pia": "piano",
    "sax": "saxophone",
    "tru": "trumpet",
    "vio": "violin",
    "voi": "voice",
}
_GTZAN_DIRS = ("genres_original", "genres")
IRMAS_DIR = "IRMAS-TrainingData"


@dataclass(frozen=True)
class AudioFile:
    """One audio file: ``url`` (local path or ``s3://…``), its ``stem``, and a ``version`` (size + mtime/ETag)."""

    url: str
    stem: str
    version: str


@dataclass(frozen=True)
class Listing:
    """The audio files of each domain under one root.

    Attributes
    ----------
    root : str
        The path or URL as given.
    layout : str
        ``"gtzan"``, ``"irmas"`` or ``"folder"``.
    files : dict
        Domain → sorted list of :class:`AudioFile`.
    paired : bool
        True when files of the same stem in different domains render the same content.
    """

    root: str
    layout: str
    files: dict[str, list[AudioFile]]
    paired: bool = False

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(sorted(self.files))

    def fingerprint(self, domains: Sequence[str] | None = None) -> str:
        """SHA-256 over the layout and every file's relative name, size and mtime (ETag on S3) of ``domains``."""
        h = hashlib.sha256(f"{self.layout}|{self.paired}".encode())
        for d in sorted(domains or self.files):
            for f in self.files[d]:
                h.update(f"\n{d}|{f.stem}|{posixpath.basename(f.url)}|{f.version}".encode())
        return h.hexdigest()


def _version(info: dict) -> str:
    tag = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified") or ""
    return f"{info.get('size', '')}:{str(tag).strip(chr(34))}"


def _is_audio(path: str) -> bool:
    return path.lower().endswith(AUDIO_EXTENSIONS) and not posixpath.basename(path).startswith(".")


def _scan(root: str) -> tuple[dict[str, dict], str]:
    """All entries under ``root`` (relative path → info) in one recursive listing, and the fs path of root."""
    fs, path = fsio.filesystem(root)
    try:
        found = fs.find(path, detail=True, withdirs=True) if fs.isdir(path) else None
        what = "" if found is not None else "a file, not a folder" if fs.exists(path) else "nothing"
    except FileNotFoundError:
        found, what = None, "nothing"
    except Exception as exc:  # noqa: BLE001 - network, credential and permission errors of any fsspec backend
        raise AudiostyleError(
            f"cannot read data source {root}: {type(exc).__name__}: {exc}. Check the path"
            + (", that AWS_ENDPOINT_URL points at a running S3 server and the AWS credentials allow reading."
               if fsio.is_remote(root) else " and its permissions.")
        ) from None
    if found is None:
        raise AudiostyleError(
            f"data source {root} does not exist or is not a folder (found {what}). Pass a folder such as "
            "<root>/<domain>/*.wav, a GTZAN or IRMAS folder, an s3:// URL, 'demo' for the built-in demo set or "
            "'bench' for the built-in benchmark."
        )
    rel = {}
    for p, info in found.items():
        r = posixpath.relpath(p.rstrip("/"), path.rstrip("/"))
        if r != ".":
            rel[r] = info
    return rel, path


def _group(root: str, rel: dict[str, dict], prefix: str, depth: int = 2) -> dict[str, list[AudioFile]]:
    """Audio files exactly ``<prefix>/<domain>/<file>`` deep, grouped by domain."""
    out: dict[str, list[AudioFile]] = {}
    for r, info in rel.items():
        sub = posixpath.relpath(r, prefix) if prefix else r
        parts = sub.split("/")
        if sub.startswith("..") or parts[0].startswith((".", "__")):
            continue
        if info.get("type") == "directory":
            if len(parts) == 1 and not prefix == r:  # a domain folder, maybe empty
                out.setdefault(parts[0], [])
            continue
        if not _is_audio(r) or len(parts) != depth:
            continue
        stem = posixpath.splitext(parts[-1])[0]
        out.setdefault(parts[0], []).append(AudioFile(fsio.join(root, r), stem, _version(info)))
    return {d: sorted(v, key=lambda f: f.url) for d, v in out.items()}


def _find_dir(rel: dict[str, dict], names: Sequence[str], root_name: str) -> str | None:
    """The shallowest folder named one of ``names`` (root itself is ``""``), at most two levels down."""
    if root_name in names:
        return ""
    dirs = sorted((r for r, i in rel.items() if i.get("type") == "directory"), key=lambda r: (r.count("/"), r))
    for r in dirs:
        if r.count("/") <= 1 and posixpath.basename(r) in names:
            return r
    return None


def _describe(rel: dict[str, dict]) -> str:
    top = sorted(r + ("/" if i.get("type") == "directory" else "") for r, i in rel.items() if "/" not in r)
    return ", ".join(top[:12]) + (f" and {len(top) - 12} more" if len(top) > 12 else "") if top else "an empty folder"


def check_source_url(source: str) -> None:
    """Refuse a data source URL of a protocol other than ``s3://`` (no other client is installed)."""
    if fsio.is_unsupported(source):
        raise AudiostyleError(f"data source {source}: only local folders and s3://bucket/prefix are supported. Copy "
                              "the data to S3 or a local folder, or mount it and pass the folder.")


def list_source(root: str, layout: str = "auto") -> Listing:
    """List the audio files of every domain under ``root`` (local path or ``s3://`` URL).

    Raises
    ------
    AudiostyleError
        Missing path, unknown layout name, or a tree that matches no layout (the message shows what was found).
    """
    if layout not in LAYOUTS:
        raise AudiostyleError(f"layout={layout!r} is not supported: choose one of {', '.join(LAYOUTS)}.")
    check_source_url(str(root))
    root = str(root).rstrip("/") or "/"
    rel, path = _scan(root)
    name = posixpath.basename(path.rstrip("/"))
    expected = (
        "Expected genres_original/<genre>/*.wav or genres/<genre>/*.au (GTZAN), IRMAS-TrainingData/<code>/*.wav "
        "(IRMAS), or one folder per domain: <root>/<domain>/*.wav|flac|ogg|au."
    )
    if layout in ("auto", "gtzan"):
        sub = _find_dir(rel, _GTZAN_DIRS, name)
        if sub is not None:
            return Listing(root, "gtzan", _group(root, rel, sub))
    if layout in ("auto", "irmas"):
        sub = _find_dir(rel, (IRMAS_DIR,), name)
        if sub is not None:
            return Listing(root, "irmas", _group(root, rel, sub), _paired(root, rel, sub))
    if layout in ("gtzan", "irmas"):
        raise AudiostyleError(f"{root} is not a {layout.upper()} folder: found {_describe(rel)}. {expected}")
    files = _group(root, rel, "")
    if not any(files.values()):
        raise AudiostyleError(
            f"cannot tell the layout of {root}: found {_describe(rel)}, but no audio in <domain>/ subfolders. "
            f"{expected}"
        )
    return Listing(root, "folder", files, _paired(root, rel, ""))


def _paired(root: str, rel: dict[str, dict], sub: str) -> bool:
    """Whether the marker :data:`PAIRED_MARKER` in folder ``sub`` of ``root`` says the tree is paired."""
    marker = posixpath.join(sub, PAIRED_MARKER)
    if marker not in rel:
        return False
    with fsio.open(fsio.join(root, marker), "rb") as f:
        return bool(json.loads(f.read().decode()).get("paired", False))


def resolve_domains(listing: Listing, domains: Sequence[str] | None) -> list[str]:
    """Map requested domain names (IRMAS codes or names) to the listing's domains, in the order given.

    Raises
    ------
    AudiostyleError
        A requested domain that the source does not hold (the message lists the ones it does).
    """
    if domains is None:
        return list(listing.domains)
    if isinstance(domains, str):
        domains = [domains]
    alias = {v: k for k, v in IRMAS_CODES.items()} if listing.layout == "irmas" else {}
    out = []
    for d in domains:
        key = d if d in listing.files else alias.get(d.lower().replace(" ", "_").replace("-", "_"), d)
        if key not in listing.files:
            found = ", ".join(
                f"{k} ({IRMAS_CODES[k]})" if listing.layout == "irmas" and k in IRMAS_CODES else k
                for k in listing.domains
            )
            raise AudiostyleError(
                f"unknown domain {d!r} in {listing.root} ({listing.layout} layout): found {found or 'none'}. "
                "Pick domains from that list."
            )
        if key not in out:
            out.append(key)
    return out
