"""The Parquet result store: round trips, atomic replace, concurrent writers, readers, errors."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest
import torch

from audiostyle.errors import AudiostyleError
from audiostyle.methods.space import Choice, Float
from audiostyle.store import Store

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.timezone.utc)


def make_row(i: int, *, method: str = "cyclegan", sweep: str = "s1", status: str = "finished", **extra) -> dict:
    """A full trial row with distinct values per ``i``."""
    return {
        "trial_id": f"t{i:03d}",
        "sweep_id": sweep,
        "method": method,
        "status": status,
        "error": None if status != "failed" else "FloatingPointError: loss is nan",
        "started_at": T0 + dt.timedelta(seconds=i),
        "ended_at": (T0 + dt.timedelta(seconds=i + 5)).timestamp(),
        "wall_s": 5.0 + i,
        "steps": 10 * (i + 1),
        "device": "cpu",
        "seed": i,
        "config.lr": 1e-3 * (i + 1),
        "config.n_filters": 64 * (i + 1),
        "config.norm": "instance",
        "config.use_dropout": bool(i % 2),
        "config.kernel": (3, 3),
        "metric.transfer_score": 0.1 * i,
        "metric.fad": np.float32(2.0 - 0.1 * i),
        "metric.lsd_db": float("nan"),
        "objective.metric": "transfer_score",
        "objective.mode": "max",
        **extra,
    }


def make_history(i: int, n: int = 3) -> list[dict]:
    return [{"step": s, "time_s": 0.5 * s, "transfer_score": 0.01 * s * i, "loss": 1.0 / s} for s in range(1, n + 1)]


def _round_trip(store: Store) -> None:
    assert store.trials().empty and store.history().empty and store.sweeps() == []
    store.write_sweep(
        {
            "method": "cyclegan",
            "sweep_id": "s1",
            "objectives": [{"metric": "transfer_score", "mode": "max"}],
            "space": {"lr": Float(1e-4, 1e-2, log=True), "norm": Choice(("instance", "batch"))},
            "args": {"samples": 4, "aws_secret_access_key": "hunter2"},
        }
    )
    for i in range(3):
        store.write_trial(make_row(i), make_history(i))
    trials = store.trials()
    assert list(trials["trial_id"]) == ["t000", "t001", "t002"]
    assert set(trials["method"]) == {"cyclegan"} and set(trials["sweep_id"]) == {"s1"}
    assert trials["metric.transfer_score"].tolist() == pytest.approx([0.0, 0.1, 0.2])
    assert trials["metric.fad"].tolist() == pytest.approx([2.0, 1.9, 1.8], rel=1e-6)
    assert trials["metric.lsd_db"].isna().all()
    assert trials["config.n_filters"].tolist() == [64, 128, 192]
    assert trials["config.n_filters"].dtype == np.int64
    assert trials["config.use_dropout"].tolist() == [False, True, False]
    assert trials["config.kernel"].tolist() == ["[3, 3]"] * 3
    assert trials["error"].isna().all()
    assert trials["started_at"].iloc[1] == pd.Timestamp(T0 + dt.timedelta(seconds=1))
    assert trials["ended_at"].iloc[0] == pd.Timestamp(T0 + dt.timedelta(seconds=5))
    hist = store.history(trial="t002")
    assert hist["step"].tolist() == [1, 2, 3]
    assert hist["metric.transfer_score"].tolist() == pytest.approx([0.02, 0.04, 0.06])
    assert hist["metric.loss"].tolist() == pytest.approx([1.0, 0.5, 1 / 3])
    assert len(store.history()) == 9 and len(store.history(method="cyclegan", sweep="s1")) == 9
    (manifest,) = store.sweeps("cyclegan")
    assert manifest["space"]["lr"] == {"type": "Float", "low": 1e-4, "high": 1e-2, "log": True}
    assert manifest["args"] == {"samples": 4}, "secret-looking keys must never be written"
    assert store.trials(method="unet").empty and store.trials(sweep="nope").empty


def test_round_trip_local(tmp_path: Path) -> None:
    _round_trip(Store(tmp_path / "results"))


@pytest.mark.slow
def test_round_trip_s3(s3_bucket: str, tmp_path: Path) -> None:
    store = Store(f"{s3_bucket}/rt")
    _round_trip(store)
    artifacts = tmp_path / "art"
    (artifacts / "samples").mkdir(parents=True)
    (artifacts / "samples" / "out.wav").write_bytes(b"RIFFdata")
    torch.save({"w": torch.arange(3.0), "step": 7}, artifacts / "checkpoint.pt")
    uris = store.put_artifacts("cyclegan", "s1", "t000", artifacts)
    assert uris["samples/out.wav"] == f"{s3_bucket}/rt/artifacts/method=cyclegan/sweep=s1/t000/samples/out.wav"
    assert store.fs.cat_file(uris["samples/out.wav"]) == b"RIFFdata"
    state = store.load_checkpoint(uris["checkpoint.pt"])
    assert state["step"] == 7 and torch.equal(state["w"], torch.arange(3.0))
    # A fresh Store on the same root (as a notebook would open it) sees everything.
    assert len(Store(f"{s3_bucket}/rt").trials()) == 3
    raw = pd.read_parquet(f"{s3_bucket}/rt/trials", storage_options={"client_kwargs": {"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}})
    assert len(raw) == 3 and set(raw["method"]) == {"cyclegan"}


def test_rewrite_replaces(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write_trial(make_row(1, status="failed"), make_history(1, n=5))
    store.write_trial(make_row(1, **{"metric.transfer_score": 0.9}), make_history(1, n=2))
    trials = store.trials()
    assert len(trials) == 1
    assert trials.loc[0, "status"] == "finished" and trials.loc[0, "metric.transfer_score"] == 0.9
    assert len(store.history()) == 2
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["t001.parquet", "t001.parquet"], files


def test_pandas_pyarrow_duckdb_read_the_tree(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for i in range(3):
        store.write_trial(make_row(i, sweep="a"), make_history(i))
    store.write_trial(make_row(9, method="unet", sweep="b"), make_history(9))
    raw = pd.read_parquet(tmp_path / "trials")
    assert len(raw) == 4 and sorted(raw["method"].astype(str)) == ["cyclegan"] * 3 + ["unet"]
    table = ds.dataset(tmp_path / "history", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 12 and "metric.loss" in table.column_names
    con = duckdb.connect()
    best = con.sql(
        f"""select method, trial_id, "metric.transfer_score" as score
            from read_parquet('{tmp_path}/trials/**/*.parquet', hive_partitioning=true, union_by_name=true)
            order by score desc limit 1"""
    ).fetchall()
    assert best == [("unet", "t009", pytest.approx(0.9))]


def test_columns_whose_type_varies_are_unified(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write_trial(make_row(0, **{"config.alpha": 1, "config.mode": True, "config.opt": None}))
    store.write_trial(make_row(1, **{"config.alpha": 0.5, "config.mode": "auto", "config.opt": 3}))
    store.write_trial(make_row(2, **{"metric.extra": 1.0}))
    trials = store.trials()
    assert trials["config.alpha"].tolist()[:2] == [1.0, 0.5]
    assert trials["config.mode"].tolist()[:2] == ["True", "auto"]
    assert trials["config.opt"].tolist()[1] == 3
    assert trials["metric.extra"].isna().sum() == 2
    # DuckDB reads the mixed tree too.
    n = duckdb.sql(
        f"select count(*) from read_parquet('{tmp_path}/trials/**/*.parquet', hive_partitioning=true, union_by_name=true)"
    ).fetchall()
    assert n == [(3,)]


def _write_one(root: str, i: int) -> None:
    Store(root).write_trial(make_row(i, sweep=f"s{i % 2}"), make_history(i, n=20))


def _write_threads(args: tuple[str, list[int]]) -> int:
    """One process: one writer thread per trial id, all at once."""
    root, ids = args
    with ThreadPoolExecutor(len(ids)) as pool:
        list(pool.map(lambda i: _write_one(root, i), ids))
    return len(ids)


def test_64_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    """4 processes x 32 threads = 128 writers at once, each of 64 trials written twice: 64 whole rows.

    A reader polls the store meanwhile: it must never meet a partial file.
    """
    root = str(tmp_path / "store")
    store = Store(root)
    jobs = [(root, list(range(32 * (p % 2), 32 * (p % 2) + 32))) for p in range(4)]
    seen: list[int] = []
    with mp.get_context("fork").Pool(4) as pool:
        pending = pool.map_async(_write_threads, jobs)
        while not pending.ready():
            seen.append(len(store.trials()))  # reading a torn file would raise here
            assert len(store.history()) % 20 == 0
        assert sum(pending.get()) == 128
    assert seen and all(n <= 64 for n in seen)
    trials = store.trials()
    assert len(trials) == 64 and trials["trial_id"].is_unique
    assert sorted(trials["seed"]) == list(range(64))
    history = store.history()
    assert len(history) == 64 * 20 and history.groupby("trial_id").size().eq(20).all()
    leftovers = [p for p in Path(root).rglob("*") if p.is_file() and not p.name.endswith(".parquet")]
    assert leftovers == []


def test_unwritable_root_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the store should be")
    store = Store(blocker / "results")
    with pytest.raises(AudiostyleError, match="writable"):
        store.write_trial(make_row(0), make_history(0))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["not_a_dir"]
    assert store.trials().empty


def test_bad_rows_and_names_are_rejected(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(AudiostyleError, match="trial_id"):
        store.write_trial({"sweep_id": "s", "method": "m"})
    with pytest.raises(AudiostyleError, match="status"):
        store.write_trial(make_row(0, status="done"))
    with pytest.raises(AudiostyleError, match="unknown column"):
        store.write_trial(make_row(0, lr=0.1))
    with pytest.raises(AudiostyleError, match="sweep"):
        store.write_trial(make_row(0, sweep="../evil"))
    with pytest.raises(AudiostyleError, match="only local paths and s3"):
        Store("gs://bucket/x")
    assert not any(tmp_path.iterdir())


def test_nested_row_and_artifacts_local(tmp_path: Path) -> None:
    store = Store(tmp_path / "res")
    art = tmp_path / "work"
    art.mkdir()
    state = {"w": torch.ones(2, 2), "arr": np.arange(4, dtype=np.float32), "step": np.int64(3)}
    torch.save(state, art / "checkpoint.pt")
    uris = store.put_artifacts("unet", "s", "t1", art)
    assert Path(uris["checkpoint.pt"]).is_file()
    assert uris["checkpoint.pt"] == f"{store.artifact_dir('unet', 's', 't1')}/checkpoint.pt"
    store.write_trial(
        {"trial_id": "t1", "sweep_id": "s", "method": "unet", "status": "stopped",
         "config": {"lr": 0.1}, "metrics": {"transfer_score": 0.3}, "artifact": {"checkpoint": uris["checkpoint.pt"]}}
    )
    row = store.trials().iloc[0]
    assert row["config.lr"] == 0.1 and row["metric.transfer_score"] == 0.3
    loaded = store.load_checkpoint(row["artifact.checkpoint"])
    assert torch.equal(loaded["w"], state["w"]) and np.array_equal(loaded["arr"], state["arr"]) and loaded["step"] == 3
    with pytest.raises(AudiostyleError, match="no checkpoint"):
        store.load_checkpoint(None)
    with pytest.raises(AudiostyleError, match="missing"):
        store.load_checkpoint(str(tmp_path / "gone.pt"))


@pytest.mark.slow
def test_unreachable_s3_store_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens on the endpoint: reads and writes fail with the store's name and the fix (after s3fs's retries)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    store = Store(f"s3://bucket-{port}/results")
    with pytest.raises(AudiostyleError, match="cannot read the store .*AWS_ENDPOINT_URL"):
        store.trials()
    with pytest.raises(AudiostyleError, match="cannot write .*AWS_ENDPOINT_URL"):
        store.write_sweep({"method": "unet", "sweep_id": "s"})


def test_a_moved_store_reads_its_own_artifacts_and_names_no_old_path(tmp_path: Path) -> None:
    store = Store(tmp_path / "res")
    art = tmp_path / "work"
    art.mkdir()
    torch.save({"step": 7}, art / "checkpoint.pt")
    uris = store.put_artifacts("unet", "s", "t1", art)
    store.write_trial({"trial_id": "t1", "sweep_id": "s", "method": "unet", "status": "finished",
                       "artifact": {"dir": store.artifact_dir("unet", "s", "t1"), "checkpoint": uris["checkpoint.pt"],
                                    "clips": '["a.wav"]'}})
    (tmp_path / "res").rename(tmp_path / "moved")
    moved = Store(tmp_path / "moved")
    row = moved.trials().iloc[0]
    assert row["artifact.dir"] == f"{tmp_path}/moved/artifacts/method=unet/sweep=s/t1"
    assert row["artifact.clips"] == '["a.wav"]'  # not a path: as written
    assert moved.load_checkpoint(row["artifact.checkpoint"])["step"] == 7
    stored = next((tmp_path / "moved" / "trials").rglob("t1.parquet")).read_bytes()
    assert str(tmp_path).encode() not in stored  # the file itself holds paths relative to the store root


def test_a_corrupt_file_is_skipped_with_a_warning_naming_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = Store(tmp_path / "res")
    for i in range(3):
        store.write_trial(make_row(i), make_history(i))
    bad = next((tmp_path / "res" / "trials").rglob("t001.parquet"))
    bad.write_bytes(bad.read_bytes()[:40])  # cut short, as by a full disk or a broken sync
    manifest = tmp_path / "res" / "sweeps" / "method=cyclegan" / "broken.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text('{"method": "cycl')
    with caplog.at_level("WARNING", logger="audiostyle.store"):
        assert list(store.trials()["trial_id"]) == ["t000", "t002"]
        assert store.sweeps() == []
    assert len(store.history()) == 9  # the history files are intact
    warned = caplog.text
    assert str(bad) in warned and str(manifest) in warned and "Delete it" in warned
