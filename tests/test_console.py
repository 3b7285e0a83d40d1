"""The sweep's console: ``make sweep`` reads (few lines, no warning, the best trial at the end), ``--help``
states each default once and lists the method's config keys and search space."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from audiostyle import methods
from audiostyle.metrics import COMMON_METRICS
from audiostyle.metrics import Objective
from audiostyle.sweep._cli import Budget, build_parser
from audiostyle.sweep._console import ProgressCallback
from audiostyle.sweep._keys import FINAL, METRICS, STEP, tracked
from tests.fixtures.console import REPO, console_sweep  # noqa: F401 - the session fixture

MAX_LINES = 40


@pytest.mark.slow
def test_smoke_sweep_prints_a_short_quiet_console_ending_with_the_best_trial(console_sweep) -> None:  # noqa: F811
    text = "\n".join(console_sweep.lines)
    assert console_sweep.returncode == 0, text
    assert len(console_sweep.lines) < MAX_LINES, text
    assert not [line for line in console_sweep.lines if re.search("warn", line, re.IGNORECASE)], text
    assert "Checkpoint successfully created" not in text and "RAY_DEDUP_LOGS" not in text
    progress = [line for line in console_sweep.lines if re.match(r"\[\d/4\] trial \w+ (finished|stopped|failed)", line)]
    assert len(progress) == 4 and all("transfer_score" in line for line in progress), text
    summary = console_sweep.lines[console_sweep.lines.index(progress[-1]) + 1:]
    config = next(line for line in summary if line.startswith("best config: "))
    assert '"filters": 512' in config  # the smoke budget's fixed value is in the best config
    metrics_line = next(line for line in summary if line.startswith("best metrics: "))
    assert all(m in metrics_line for m in COMMON_METRICS)
    audio = Path(next(line for line in summary if line.startswith("best audio: ")).removeprefix("best audio: "))
    figure = Path(next(line for line in summary if line.startswith("best figure: ")).removeprefix("best figure: "))
    assert audio.name == "clip0_output.wav" and audio.is_file() and figure.suffix == ".png" and figure.is_file()
    assert {p.name for p in audio.parent.glob("clip0_*.wav")} == {f"clip0_{r}.wav" for r in
                                                                   ("content", "style", "output", "target")}


def _help(budget: Budget = Budget()) -> str:
    return build_parser("d", budget).format_help()


def test_help_states_each_default_once_and_required_flags_none() -> None:
    text = _help(Budget(samples=48, smoke_samples=4))
    assert "(default: None)" not in text and "(default: False)" not in text
    for flag in ("--samples", "--steps", "--max-concurrent", "--search"):
        entry = re.search(rf"  {flag} .*?(?=\n  -)", text, re.DOTALL).group(0)
        assert entry.count("default") == 1, entry
    assert "number of trials (default 48; smoke 4)" in " ".join(text.split())


@pytest.mark.slow
def test_script_help_lists_the_methods_config_keys_with_defaults_and_the_search_space() -> None:
    out = subprocess.run([sys.executable, "sweeps/shallow_cnn.py", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    m = methods.get("shallow_cnn")
    for field, value in (("filters", 4096), ("alpha", 0.006), ("features", "'stft'"), ("weights_path", None)):
        assert f"  {field} = {value}" in out
    for name in m.default_space():
        assert re.search(rf"^  {name}: ", out, re.MULTILINE), name
    assert "alpha: by pre_eq: False → real 0.0001 … 100 (log scale); True → real 0.0001 … 100 (log scale)" in out
    assert "features: one of stft | mel | mfcc" in out


def test_progress_line_per_ended_trial_shows_the_final_headline_once() -> None:
    lines: list[str] = []
    cb = ProgressCallback(Objective("transfer_score", "max"), 3, lambda r: "finished" if r.get(FINAL) else "stopped",
                          lines.append)
    done = SimpleNamespace(trial_id="a", last_result={FINAL: True, STEP: 12, METRICS: {"transfer_score": 0.5},
                                                       tracked("transfer_score"): 0.4})
    stopped = SimpleNamespace(trial_id="b", last_result={STEP: 4, tracked("transfer_score"): 0.25})
    cb.on_trial_complete(0, [], done)
    cb.on_trial_complete(0, [], done)  # once per trial
    cb.on_trial_complete(0, [], stopped)
    cb.on_trial_error(0, [], SimpleNamespace(trial_id="c", last_result=None, error_file=None, get_error=lambda: None))
    assert lines == ["[1/3] trial a finished at step 12: transfer_score 0.5",
                     "[2/3] trial b stopped at step 4: transfer_score 0.25",
                     "[3/3] trial c failed at step 0: transfer_score nan"]


def test_progress_line_flags_a_diverged_gan() -> None:
    from audiostyle.methods.base import DIVERGED

    lines: list[str] = []
    cb = ProgressCallback(Objective("fad", "min"), 1, lambda r: "finished", lines.append)
    cb.on_trial_complete(0, [], SimpleNamespace(trial_id="g", last_result={FINAL: True, STEP: 40,
                                                                           METRICS: {"fad": 9.0, DIVERGED: 1.0}}))
    assert lines == ["[1/1] trial g finished at step 40: fad 9 (diverged: a discriminator wins outright; "
                     "lower its lr or raise the generator's)"]


def test_a_failed_trials_line_ends_with_its_exception_and_no_colour_code(tmp_path: Path) -> None:
    from audiostyle.sweep._keys import ERROR

    lines: list[str] = []
    cb = ProgressCallback(Objective("transfer_score", "max"), 2, lambda r: "failed", lines.append)
    nan = {STEP: 3, ERROR: "Traceback (most recent call last):\n  File \"x.py\", line 1\nFloatingPointError: NaN loss at step 3\n"}
    cb.on_trial_complete(0, [], SimpleNamespace(trial_id="n", last_result=nan))
    error_file = tmp_path / "error.txt"  # as Ray writes it: one block per failure, the worker's name coloured
    error_file.write_text("Failure # 1 (occurred at 2026-12-03)\n\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=1)\n"
                          "  File \"y.py\", line 2\nPlatformError: reporting step 2 to Ray Tune failed\n")
    cb.on_trial_error(0, [], SimpleNamespace(trial_id="r", last_result={STEP: 1}, error_file=str(error_file)))
    assert lines == ["[1/2] trial n failed at step 3: transfer_score nan: FloatingPointError: NaN loss at step 3",
                     "[2/2] trial r failed at step 1: transfer_score nan: PlatformError: reporting step 2 to Ray Tune "
                     "failed"]


def test_a_quiet_sweep_drops_rays_per_attempt_failure_logs_and_keeps_its_other_errors(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import logging
    import os

    from audiostyle.sweep._console import QUIET_ENV, quiet_env

    for key in QUIET_ENV:
        monkeypatch.setenv(key, os.environ.get(key, ""))  # restored after the test
    quiet_env(0)
    controller = logging.getLogger("ray.tune.execution.tune_controller")
    with caplog.at_level(logging.WARNING):
        controller.error("Trial task failed for trial toy_1\nTraceback ...")
        logging.getLogger("ray.tune.tune").error("Trials did not complete: [toy_1]")
        controller.error("Failed to restore the run state.")
    assert [r.getMessage() for r in caplog.records] == ["Failed to restore the run state."]


STOPPED_IN_A_CALLBACK = """
import sys, weakref
if sys.argv[1] == "quiet":
    from audiostyle.sweep._console import drop_stop_tracebacks
    drop_stop_tracebacks()

class Held:
    pass

def stop(_):  # what Ray's SIGTERM handler does when it lands inside a weakref callback
    raise SystemExit(1)

def bug(_):
    raise ValueError("a real bug")

a, b = Held(), Held()
refs = [weakref.ref(a, stop), weakref.ref(b, bug)]
del a, b
print("still running")
"""


@pytest.mark.parametrize("mode", ["plain", "quiet"])
def test_a_trial_stopped_inside_a_callback_prints_no_traceback_but_other_errors_still_show(mode: str) -> None:
    """A trial's process drops Python's "Exception ignored ... SystemExit" (Ray stopping a paused trial's actor) and
    keeps every other exception Python cannot raise."""
    run = subprocess.run([sys.executable, "-c", STOPPED_IN_A_CALLBACK, mode], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0 and "still running" in run.stdout
    assert "ValueError: a real bug" in run.stderr
    assert ("SystemExit" in run.stderr) == (mode == "plain"), run.stderr
