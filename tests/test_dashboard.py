"""``python -m audiostyle.dashboard`` serves the smoke sweep's study: checked in a real headless chromium.

Debian's chromium through its chromedriver (``/usr/bin/chromedriver``, passed explicitly: selenium downloads
nothing); no network, no GPU, a fresh profile.
"""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Iterator

import optuna
import pytest

from audiostyle import dashboard
from audiostyle.sweep._keys import RAY_TRIAL_ID
from audiostyle.sweep._study import journal_storage
from tests.fixtures.console import REPO, console_sweep  # noqa: F401 - the session fixture

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio")


@pytest.fixture
def served(console_sweep) -> Iterator[str]:  # noqa: F811
    """The dashboard over the smoke sweep's store on a free port of 127.0.0.1; its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "audiostyle.dashboard", "--store", str(console_sweep.store),
                             "--port", "0"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/dashboard", line)
        assert match, line
        yield f"http://127.0.0.1:{match.group(1)}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def browser(tmp_path: Path):
    if not (CHROMEDRIVER.exists() and CHROMIUM.exists()):
        pytest.fail("chromium and chromium-driver are missing: `make system-packages` installs them (as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
def test_study_keeps_every_trial_named_by_its_ray_trial_with_its_artifacts(console_sweep) -> None:  # noqa: F811
    storage = journal_storage(str(console_sweep.store))
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    assert summary.study_name.startswith("shallow_cnn-") and len(study.trials) == 4
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert finished and all(re.fullmatch(r"\w{8}", t.user_attrs[RAY_TRIAL_ID]) for t in study.trials)
    names = sorted(json_name for t in finished for k, v in t.system_attrs.items() if k.startswith("artifacts:")
                   for json_name in re.findall(r'"filename": "([^"]+)"', v))
    assert {"clip0_content.wav", "clip0_output.wav", "clip0_style.wav", "clip0_target.wav",
            "spectrogram.png", "learning_curves.png"} <= set(names)
    from audiostyle.store import Store

    rows = Store(str(console_sweep.store)).trials().set_index("trial_id")
    for trial in finished:  # the headline's parts, per trial, as the store has them
        row = rows.loc[trial.user_attrs[RAY_TRIAL_ID]]
        for name in ("transfer_score", "melody", "target_prob"):
            assert trial.user_attrs[name] == pytest.approx(row[f"metric.{name}"], abs=1e-4)


@pytest.mark.slow
def test_dashboard_lists_the_sweeps_trials_and_plays_a_trials_audio(served: str, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{served}/dashboard")
    link = WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.PARTIAL_LINK_TEXT, "shallow_cnn-"))[0]
    study_url = link.get_attribute("href")
    browser.get(f"{study_url.rstrip('/')}/trials")
    WebDriverWait(browser, 60).until(lambda d: all(f"Trial {n}" in d.page_source for n in range(4)))
    audio = WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "audio source"))[0]
    src = audio.get_attribute("src")
    ready = WebDriverWait(browser, 60).until(
        lambda d: d.execute_script("return document.querySelector('audio').readyState") >= 1)
    assert ready
    with urllib.request.urlopen(src, timeout=30) as response:
        assert response.status == 200 and response.read(4) == b"RIFF"


def test_dashboard_refuses_a_store_without_sweeps(tmp_path: Path, capsys) -> None:
    assert dashboard.main(["--store", str(tmp_path / "empty")]) == 2
    assert "has no Optuna journal" in capsys.readouterr().err
    text = " ".join(dashboard.parser().format_help().split())
    assert "(default: 127.0.0.1)" in text and "(default: results)" in text


def test_fsspec_journal_and_artifact_store_round_trip_a_study() -> None:
    """The ``s3://`` twins, on fsspec's memory filesystem: a study written, read back by a fresh storage."""
    import io

    from optuna.storages import JournalStorage

    from audiostyle.sweep._study import FsspecArtifactStore, FsspecJournalBackend

    url = "memory://look-journal/optuna/journal.log"
    study = optuna.create_study(study_name="s", storage=JournalStorage(FsspecJournalBackend(url)))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    again = optuna.load_study(study_name="s", storage=JournalStorage(FsspecJournalBackend(url)))
    assert [t.params for t in again.trials] == [t.params for t in study.trials]
    store = FsspecArtifactStore("memory://look-journal/optuna/artifacts")
    store.write("a1", io.BytesIO(b"RIFF...."))
    assert store.open_reader("a1").read() == b"RIFF...."
    store.remove("a1")
    with pytest.raises(optuna.artifacts.exceptions.ArtifactNotFound):
        store.open_reader("a1")


def serve_and_get(store: Path, *flags: str, requests: int = 2) -> str:
    """Start the dashboard over ``store`` on a free port, GET its study list ``requests`` times, stop it; what it
    wrote to stderr. The server logs a request after answering it, so the last GET is there to let the earlier
    ones' log lines be written before the server is stopped."""
    proc = subprocess.Popen([sys.executable, "-m", "audiostyle.dashboard", "--store", str(store), "--port", "0", *flags],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        match = re.search(r"http://127\.0\.0\.1:(\d+)/dashboard", proc.stdout.readline())
        assert match, proc.stderr.read()
        for _ in range(requests):
            with urllib.request.urlopen(f"http://127.0.0.1:{match.group(1)}/api/studies", timeout=60) as response:
                assert response.status == 200 and b"quiet" in response.read()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    return err


def test_dashboard_logs_requests_only_when_verbose(tmp_path: Path) -> None:
    optuna.create_study(study_name="quiet", storage=journal_storage(str(tmp_path)))
    assert "GET /api/studies" not in serve_and_get(tmp_path)
    assert '"GET /api/studies HTTP/1.1" 200' in serve_and_get(tmp_path, "--verbose")
