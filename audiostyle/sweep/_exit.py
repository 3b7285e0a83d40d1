"""A trial's process ends cleanly when Ray stops the trial, instead of aborting with a C++ stack trace.

Ray runs a function trainable in a daemon thread. To stop a trial it makes that thread raise ``SystemExit`` at its
next ``tune.report`` and ends the worker process without waiting for the thread (its ``cleanup`` joins with
``timeout=0``). If the thread is still unwinding (freeing the trial's tensors) or still in torch code that released
the GIL when the interpreter starts finalising, its next attempt to take the GIL ends it with ``pthread_exit``; the
unwind through torch's C++ frames calls ``std::terminate``, the process aborts (SIGABRT), and Ray forwards the C++
stack trace to the sweep's console.

:func:`join_at_exit` registers the training thread with an ``atexit`` hook, which runs before finalisation, while
daemon threads can still take the GIL: the hook waits up to :data:`JOIN_SECONDS` for the thread to end, and if it
has not (a thread in the middle of a long step), ends the process with ``os._exit(0)``, output flushed, rather than
let it abort.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time

JOIN_SECONDS = 10.0
"""How long a stopping process waits for its training threads to end (s)."""

_training_threads: list[threading.Thread] = []


def join_at_exit(thread: threading.Thread | None = None) -> None:
    """Make the process wait for ``thread`` (default: the calling thread) before it finalises; a no-op for the main
    thread, which the interpreter finalises from."""
    thread = thread or threading.current_thread()
    if thread is threading.main_thread() or thread in _training_threads:
        return
    if not _training_threads:
        atexit.register(_join_training_threads)
    _training_threads.append(thread)


def _join_training_threads() -> None:
    deadline = time.monotonic() + JOIN_SECONDS
    for thread in _training_threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in _training_threads):
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(0)
