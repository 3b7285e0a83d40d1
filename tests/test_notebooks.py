"""Every notebook in analysis/ runs top to bottom on a fresh Jupyter kernel over a store made by real smoke
sweeps, and writes its figures as PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from audiostyle import analysis, plots
from audiostyle.store import Store

ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"
NOTEBOOKS = sorted(p.stem for p in ANALYSIS.glob("*.ipynb"))


def expected_figures(name: str, trials) -> set[str]:
    methods = sorted(trials["method"].unique())
    return {
        "best_configs": {f"best_{m}_spectrograms" for m in analysis.best_per_method(trials)["method"]},
        "compare_methods": {"compare_methods"},
        "pareto": {"pareto"},
        "learning_curves": {"learning_curves", "learning_curves_melody",
                            *(f"trial_{m}_history" for m in analysis.best_per_method(trials)["method"])},
        "parallel_coordinates": {f"parallel_{m}" for m in methods},
        "importance": {"importance"},
    }[name]


def execute(name: str, store: str, figures: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    monkeypatch.setenv("AUDIOSTYLE_STORE", store)
    monkeypatch.setenv("AUDIOSTYLE_FIGURES", str(figures))
    nb = nbformat.read(ANALYSIS / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(ANALYSIS)}}).execute()
    return nb


def test_all_notebooks_are_tested() -> None:
    assert NOTEBOOKS == sorted(["best_configs", "compare_methods", "pareto", "learning_curves", "parallel_coordinates", "importance"])
    for name in NOTEBOOKS:
        nb = nbformat.read(ANALYSIS / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        first = nb.cells[1]
        assert "parameters" in first.metadata.get("tags", []) and "AUDIOSTYLE_STORE" in first.source
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name} is committed with outputs"


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_and_writes_figures(name: str, smoke_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trials = Store(smoke_store).trials()
    assert len(trials) and trials["status"].isin(["finished", "stopped"]).any()
    figures = tmp_path / "figures"
    nb = execute(name, smoke_store, figures, monkeypatch)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "a cell did not run"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    written = {p.stem for p in figures.glob("*.png")}
    assert written == expected_figures(name, trials)
    for png in figures.glob("*.png"):
        image = mpimg.imread(png)
        assert image.shape[0] > 100 and image.shape[1] > 100 and float(np.std(image)) > 0.01, png
    html = "".join(o.get("data", {}).get("text/html", "") for c in code for o in c.outputs)
    if name == "best_configs":  # a player per wav the best trials wrote (outputs, inputs, targets), figures inline
        store = Store(smoke_store)
        best = analysis.best_per_method(trials).set_index("method")
        wavs = {m: plots.artifact_wavs(store, row) for m, row in best.iterrows()}
        assert html.count("<audio") == sum(len(w) for w in wavs.values()) and any(wavs.values())
        shown = "".join(o.get("data", {}).get("text/markdown", "") for c in code for o in c.outputs)
        for method, written in wavs.items():  # a best trial stopped at a rung wrote no audio: the notebook says so
            no_audio = f"No audio: trial `{best.loc[method, 'trial_id']}`"
            assert (no_audio in shown) == (not written), (method, written)
        if wavs["shallow_cnn"]:
            assert {"clip0_content.wav", "clip0_target.wav"} <= set(wavs["shallow_cnn"])
            assert "`clip0` content (piano/" in shown and "`clip0` target" in shown
        pngs = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
        assert len(pngs) >= len(expected_figures(name, trials)), "no figure inline per method"
    if name == "importance":
        assert "<table" in html, "no method got importances"


def test_empty_store_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook pointed at an empty store stops at its first data cell with the store's name and the fix."""
    from nbclient.exceptions import CellExecutionError

    with pytest.raises(CellExecutionError, match="holds no trials"):
        execute("compare_methods", str(tmp_path / "nothing"), tmp_path / "figures", monkeypatch)
    assert not (tmp_path / "figures").exists()
