"""``python -m audiostyle.dashboard --store results``: optuna-dashboard over the store's sweeps.

Every sweep keeps its Optuna study in the store (:func:`audiostyle.sweep.journal_storage`); this serves them all with
optuna-dashboard: per sweep (a study named by its sweep id) the optimisation history, parallel coordinates,
hyperparameter importances, the Pareto front of a multi-objective sweep, and per trial its audio (content,
style, output, true target) with players, and its spectrogram figure. Binds 127.0.0.1 unless ``--host`` says
otherwise (the dashboard can delete artifacts and write notes: keep it off shared networks). Quiet: one line
with its address, errors on stderr; ``--verbose`` also logs every HTTP request there.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence
from wsgiref.simple_server import WSGIRequestHandler, make_server

from audiostyle.cli_help import HelpFormatter
from audiostyle.errors import AudiostyleError
from audiostyle.store import DEFAULT_ROOT

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def app(store: str) -> Any:
    """optuna-dashboard's WSGI application over ``store``'s Optuna journal and artifacts."""
    from optuna_dashboard import wsgi

    from audiostyle import fsio
    from audiostyle.sweep import JOURNAL, artifact_store, journal_storage

    if not fsio.exists(fsio.join(store, JOURNAL)):
        raise AudiostyleError(
            f"the store {store!r} has no Optuna journal ({JOURNAL}): run a sweep into it first, e.g. "
            f"`python sweeps/shallow_cnn.py --smoke --store {store}`."
        )
    return wsgi(journal_storage(store), artifact_store=artifact_store(store))


class QuietHandler(WSGIRequestHandler):
    """The WSGI request handler without its per-request log line (errors still reach stderr)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def parser() -> argparse.ArgumentParser:
    """The flags of ``python -m audiostyle.dashboard``."""
    p = argparse.ArgumentParser(prog="python -m audiostyle.dashboard", formatter_class=HelpFormatter,
                                description="Serve optuna-dashboard over the sweeps in a result store: history, "
                                            "parallel coordinates, importances, Pareto front, each trial's audio.")
    p.add_argument("--store", default=DEFAULT_ROOT, help="store root: a local path or s3://bucket/prefix")
    p.add_argument("--host", default=DEFAULT_HOST, help="address to bind (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    p.add_argument("-v", "--verbose", action="store_true", help="log every HTTP request to stderr")
    return p


def bind(host: str, port: int, application: Any, handler: type) -> Any:
    """The WSGI server listening on ``host:port``; a port in use or a host this machine lacks is an
    :class:`AudiostyleError` naming them."""
    try:
        return make_server(host, port, application, handler_class=handler)
    except OSError as exc:
        raise AudiostyleError(f"cannot listen on {host}:{port}: {exc.strerror or exc}. Pass another --port (one "
                              "nothing else uses) or a --host of this machine (127.0.0.1, 0.0.0.0).") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until interrupted; the exit status (2 on a store without sweeps)."""
    args = parser().parse_args(argv)
    handler = WSGIRequestHandler if args.verbose else QuietHandler
    try:
        if not 0 <= args.port <= 65535:
            raise AudiostyleError(f"--port {args.port} is not a TCP port: pass 1 to 65535 (0: any free one).")
        application = app(args.store)
        server = bind(args.host, args.port, application, handler)
    except AudiostyleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with server:
        print(f"optuna-dashboard over {args.store} at http://{args.host}:{server.server_port}/dashboard", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
