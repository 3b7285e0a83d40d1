"""Bad input at every command line: one ``error:`` line naming the bad value and the fix, exit status 2, and
nothing written (no manifest, no Ray started). The slow tests at the end need a Ray: what the cluster cannot hold,
and a sweep whose every trial failed."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Callable

import numpy as np
import optuna
import pytest
import soundfile as sf

from audiostyle import best, calibrate, dashboard, methods, sweep
from audiostyle.data import bench
from audiostyle.store import Store
from audiostyle.sweep._study import journal_storage

methods.register("toy", "tests.toy_method:Toy")


def sweep_cli(method: str) -> Callable[[list[str]], int]:
    return lambda argv: sweep.main(method, method, sweep.Budget(samples=4), argv=argv)


def busy_port() -> socket.socket:
    """A socket listening on a free loopback port (closed by the caller)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


# (command, its arguments with {store} and {tmp} for the test's folders, what the one error line must name)
CASES = {
    "sweep --samples 0": ("toy", ["--samples", "0"], ["samples=0", "--samples 1 or more"]),
    "sweep lr=inf": ("toy", ["--set", "x=inf"], ["x=inf", "a finite number"]),
    "sweep --max-concurrent 0": ("toy", ["--max-concurrent", "0"], ["max_concurrent=0", "--max-concurrent 1"]),
    "sweep --cpus-per-trial 0": ("toy", ["--cpus-per-trial", "0"], ["cpus_per_trial=0", "--cpus-per-trial 0.5"]),
    "sweep --max-failures -1": ("toy", ["--max-failures", "-1"], ["max_failures=-1", "--max-failures 0"]),
    "sweep --top 0": ("toy", ["--top", "0"], ["--top 0", "--top 1"]),
    "sweep --pareto --population 1": ("toy", ["--pareto", "--population", "1"], ["population=1", "at least 2"]),
    "sweep --name of a stored sweep": ("toy", ["--name", "taken"], ["--name taken", "--resume --name taken"]),
    "sweep --address nothing listens on": ("toy", ["--address", "127.0.0.1:1"],
                                           ["--address 127.0.0.1:1", "--address local"]),
    "sweep --data gs://": ("toy", ["--data", "gs://bucket"], ["gs://bucket", "s3://bucket/prefix"]),
    "sweep amp=fp16 on the CPU": ("cyclegan", ["--set", "amp=fp16"], ["amp='fp16'", "--set amp=bf16"]),
    "best --sr 0": ("best", ["--method", "toy", "--sr", "0"], ["--sr 0", "--sr 22050"]),
    "best --sr -5": ("best", ["--method", "toy", "--sr", "-5", "--render", "{tmp}/in.wav", "--out", "{tmp}/o.wav"],
                     ["--sr -5", "--sr 22050"]),
    "best --export .txt": ("best", ["--method", "toy", "--export", "{tmp}/best.txt"], ["best.txt", "best.yaml"]),
    "best --render shallow_cnn without --style": (
        "best", ["--method", "shallow_cnn", "--store", "{store}", "--render", "{tmp}/in.wav", "--out", "{tmp}/o.wav"],
        ["shallow_cnn", "--style STYLE.wav"]),
    "calibrate --style tuba": ("calibrate", ["--data", "{tmp}/pair", "--content", "piano", "--style", "tuba"],
                               ["--style 'tuba'", "choose one of piano, violin"]),
    "calibrate --data s3:// unreachable": ("calibrate", ["--data", "s3://bucket/data", "--content", "piano",
                                                         "--style", "violin"],
                                           ["s3://bucket/data", "AWS_ENDPOINT_URL points at a running S3 server"]),
    "calibrate --melodies 0": ("calibrate", ["--content", "piano", "--style", "violin", "--melodies", "0"],
                               ["--melodies 0", "--melodies 1 or more"]),
    "bench --soundfont <a text file>": ("bench", ["--out", "{tmp}/bench", "--soundfont", "{tmp}/notes.sf2"],
                                        ["notes.sf2", "not a SoundFont", "--soundfont PATH"]),
    "bench --out <a file>": ("bench", ["--out", "{tmp}/notes.sf2"], ["--out", "notes.sf2 is a file", "folder path"]),
    "dashboard --port 99999": ("dashboard", ["--store", "{store}", "--port", "99999"], ["--port 99999", "1 to 65535"]),
    "dashboard --port in use": ("dashboard", ["--store", "{store}", "--port", "{busy}"],
                                ["127.0.0.1:{busy}", "another --port"]),
    "dashboard --host not of this machine": ("dashboard", ["--store", "{store}", "--host", "203.0.113.7"],
                                             ["203.0.113.7", "--host of this machine"]),
}
COMMANDS = {"best": best.main, "calibrate": calibrate.main, "bench": bench.main, "dashboard": dashboard.main}


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, str]:
    """A store holding one sweep ('taken', a shallow_cnn trial with a checkpoint, an Optuna study), a two-domain
    paired folder, a text file named like a soundfont and an input wav."""
    store = Store(tmp_path / "store")
    store.write_sweep({"method": "toy", "sweep_id": "taken", "started_at": "2026-12-01T00:00:00+00:00"})
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "checkpoint.pt").write_bytes(b"")
    uris = store.put_artifacts("shallow_cnn", "taken", "t1", tmp_path / "work")
    store.write_trial({"trial_id": "t1", "sweep_id": "taken", "method": "shallow_cnn", "status": "finished",
                       "metrics": {"transfer_score": 0.5}, "artifact": {"checkpoint": uris["checkpoint.pt"]}})
    optuna.create_study(study_name="taken", storage=journal_storage(str(tmp_path / "store")))
    tone = np.sin(np.arange(4 * 22050) / 22050 * 2 * np.pi * 440).astype(np.float32)  # 4 s: longer than half a clip
    for domain in ("piano", "violin"):
        (tmp_path / "pair" / domain).mkdir(parents=True)
        sf.write(tmp_path / "pair" / domain / "m0.wav", tone, 22050)
    sf.write(tmp_path / "in.wav", tone, 22050)
    (tmp_path / "notes.sf2").write_text("not a soundfont\n")
    return {"store": str(tmp_path / "store"), "tmp": str(tmp_path)}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_error_line_naming_the_value_and_the_fix(case: str, folders: dict[str, str],
                                                                   capsys: pytest.CaptureFixture,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    command, argv, named = CASES[case]
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # an S3 server that is not there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    sock = busy_port()
    values = {**folders, "busy": str(sock.getsockname()[1])}
    try:
        argv = [a.format(**values) for a in argv]
        if command not in COMMANDS:
            argv = ["--store", folders["store"], "--no-dashboard", *argv]
        capsys.readouterr()
        status = COMMANDS.get(command, sweep_cli(command))(argv)
    finally:
        sock.close()
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for fragment in named:
        assert fragment.format(**values) in err, err
    assert [m["sweep_id"] for m in Store(folders["store"]).sweeps()] == ["taken"]  # nothing half-started


@pytest.mark.slow
def test_what_a_local_ray_cannot_hold_is_refused_and_a_sweep_whose_every_trial_failed_exits_1(
        tmp_path: Path, ray_session: None, capsys: pytest.CaptureFixture) -> None:
    from audiostyle.errors import AudiostyleError
    from audiostyle.sweep._ray import fit_concurrency

    # the local Ray a sweep starts never grows (the session's has 2 CPUs); a Ray the caller started may
    with pytest.raises(AudiostyleError, match=r"cpus_per_trial=64.0 but this Ray \(local\) has 2 CPUs.*--cpus-per-trial 2"):
        fit_concurrency(4, 64.0, 0.0, "local")
    assert fit_concurrency(4, 3.0, 0.0, "existing") == 1

    argv = ["--store", str(tmp_path / "store"), "--samples", "2", "--scheduler", "none", "--set", "fail=raise",
            "--set", "fail_at=1"]
    assert sweep_cli("toy")(argv) == 1
    err = capsys.readouterr().err
    assert "error: every trial of sweep toy-" in err and "toy: asked to fail at step 1" in err
