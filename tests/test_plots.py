"""A trial's learning-curve figure: what it draws from the reports, on which panel."""

from __future__ import annotations

import pandas as pd

from audiostyle import plots


def _reports() -> list[dict[str, float]]:
    return [{"step": s, "g_loss": 4.0 / s, "d_loss": 0.5, "amp_bf16": 0.0, "transfer_score": 0.1 * s,
             "melody": 0.9, "target_prob": 0.05 * s, "lsd_rel": 1.0 - 0.05 * s, "timbre_dist": 6.0 - s}
            for s in (1, 2, 4, 8)]


def _panels(fig) -> dict[str, list[str]]:
    return {ax.get_title(): [line.get_label() for line in ax.get_lines()] for ax in fig.axes}


def test_trial_history_draws_losses_headline_parts_and_distances_apart() -> None:
    fig = plots.fig_trial_history(_reports(), "cyclegan t1")
    panels = _panels(fig)
    assert panels == {"losses and diagnostics": ["g_loss"], "headline and its parts":
                      ["transfer_score", "target_prob", "lsd_rel"], "distances": ["timbre_dist"]}
    losses = next(ax for ax in fig.axes if ax.get_title().startswith("losses"))
    assert losses.get_yscale() == "log" and list(losses.get_lines()[0].get_xdata()) == [1, 2, 4, 8]


def test_trial_history_reads_the_stores_history_rows() -> None:
    rows = pd.DataFrame(_reports()).rename(columns=lambda c: c if c == "step" else f"metric.{c}")
    rows["trial_id"] = "t1"
    assert _panels(plots.fig_trial_history(rows)) == _panels(plots.fig_trial_history(_reports()))
    assert _panels(plots.fig_trial_history([])) == {"no curves yet": []}
