"""A stopped trial's process ends cleanly: its training thread, still in torch code when the process exits, is
waited for (or cut off with ``os._exit``) instead of aborting with a C++ stack trace that Ray would forward to the
sweep's console."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from tests.fixtures.console import REPO

TRIAL_PROCESS = textwrap.dedent("""
    import sys, threading, torch
    from audiostyle.sweep import _exit
    _exit.JOIN_SECONDS = float(sys.argv[1])
    torch.set_num_threads(1)
    started = threading.Event()

    def training(matmuls):
        if sys.argv[3] == "join":
            _exit.join_at_exit()
        a = torch.randn(1500, 1500)
        started.set()
        for _ in range(matmuls):  # each matmul releases the GIL and takes it back
            a = a @ a / 1500.0
        print("training thread ended", flush=True)

    threading.Thread(target=training, args=(int(sys.argv[2]),), daemon=True).start()
    started.wait()
    print("main thread exits", flush=True)
""")


def _exit_with_training_thread(join_seconds: float, matmuls: int, join: bool) -> tuple[subprocess.CompletedProcess,
                                                                                      float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", TRIAL_PROCESS, str(join_seconds), str(matmuls),
                           "join" if join else "no"], cwd=REPO, capture_output=True, text=True, timeout=300)
    return done, time.perf_counter() - started


def test_a_process_exiting_while_its_training_thread_is_in_torch_waits_for_it_instead_of_aborting() -> None:
    plain, _ = _exit_with_training_thread(60, 8, join=False)
    assert plain.returncode == -6 and "terminate called" in plain.stderr  # the abort Ray forwarded to the console
    joined, _ = _exit_with_training_thread(60, 8, join=True)
    assert joined.returncode == 0, joined.stderr
    assert joined.stdout.splitlines() == ["main thread exits", "training thread ended"]
    assert "terminate called" not in joined.stderr


def test_a_training_thread_that_outlasts_the_wait_is_cut_off_without_an_abort() -> None:
    cut, seconds = _exit_with_training_thread(0.5, 100_000, join=True)
    assert cut.returncode == 0 and "terminate called" not in cut.stderr, cut.stderr
    assert cut.stdout.splitlines() == ["main thread exits"]
    assert seconds < 60  # 100 000 matmuls take hours: the process did not wait for them
