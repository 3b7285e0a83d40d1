"""The test pairs and rows the quality benches share (``bench_quality.py``, ``bench_style_view.py``).

Every row is scored on the same test-split pairs (:func:`scored_pairs`), beside copy-content, copy-style and the
eq_match signal-processing baseline (:func:`baseline_rows`), and judged against them (:func:`won`).
"""

from __future__ import annotations

import argparse
import dataclasses

from audiostyle import methods, metrics
from audiostyle.audio import eq_match
from audiostyle.methods.base import TrialContext

COLUMNS = ("lsd_db", "lsd_rel", "timbre_dist", "timbre_shift", "pitch_acc", "target_prob", "melody", metrics.HEADLINE)


@dataclasses.dataclass(frozen=True)
class Budget:
    """What the shallow CNN gets on this machine.

    Attributes
    ----------
    samples, steps : int
        Sweep trials, and L-BFGS iterations per trial and per table row.
    fixed : dict
        Config values every row and trial shares (removed from the sweep's space).
    """

    samples: int
    steps: int
    fixed: dict


SHALLOW_BUDGET = Budget(6, 20, {"griffin_lim_iters": 64, "report_griffin_lim_iters": 16, "max_seconds": 6.0,
                                "optimizer": "lbfgs"})
"""20 iterations a trial: adam, rmsprop and sgd barely move the output in so few (in a 40-trial sweep over all four
optimisers, their 25 draws sat at the copy-content floor), so at this budget the sweep searches L-BFGS configs."""
DEFAULT_DIRECTION = ("piano", "violin")
"""``--content`` and ``--style`` by default."""


def config_fields(method) -> set[str]:
    return {f.name for f in dataclasses.fields(method.Config)}


def direction(method, args: argparse.Namespace, pairs: int | None) -> dict:
    """The direction's config fields of ``method`` (content → style; a domain-pair method scores that direction
    alone), with ``pairs`` scored clips (None: the method's own default or preset value)."""
    if "content_domain" in config_fields(method):
        return {"content_domain": args.content, "style_domain": args.style,
                **({"pairs": pairs} if pairs is not None else {})}
    return {"domain_x": args.content, "domain_y": args.style, "scored": "x2y",  # the sweep chooses on content → style
            **({"val_clips": pairs} if pairs is not None else {})}


def shallow_settings(method, args: argparse.Namespace, split: str, steps: int) -> dict:
    """The fixed part of every shallow-CNN config: direction, scored split and clip count, budget."""
    every = max(1, steps // 3)
    return {**SHALLOW_BUDGET.fixed, **direction(method, args, args.pairs), "split": split, "steps": steps,
            "report_every": every}


def score(method, config: dict, dataset) -> dict[str, float]:
    """``method`` trained (optimised) with ``config``: its final metrics row on ``config``'s split."""
    cfg = method.make_config(config)
    return method.train(cfg, method.prepare(dataset, cfg), TrialContext())


@dataclasses.dataclass
class Pairs:
    """The test pairs every row is scored on (the shallow CNN's test split, ``--pairs`` of them) and the reference."""

    contents: list
    targets: list
    styles: list
    sr: int
    reference: object
    style_domain: str
    names: list

    def score(self, outputs) -> dict[str, float]:
        return metrics.evaluate(outputs, self.contents, self.sr, self.reference, self.style_domain,
                                true_targets=self.targets)


def scored_pairs(dataset, args: argparse.Namespace) -> Pairs:
    method = methods.get("shallow_cnn")
    cfg = method.make_config(shallow_settings(method, args, "test", 1))
    data = method.prepare(dataset, cfg)
    return Pairs(list(data.contents), list(data.targets), [s[: len(c)] for s, c in zip(data.styles, data.contents)],
                 data.sr, data.reference, data.style_domain, list(data.names))


def baseline_rows(pairs: Pairs) -> dict[str, dict[str, float]]:
    """The copy-content, copy-style and eq_match rows."""
    return {"copy content": pairs.score(pairs.contents), "copy style": pairs.score(pairs.styles),
            "eq_match (signal processing)": pairs.score(
                [eq_match(c, s, pairs.sr) for c, s in zip(pairs.contents, pairs.styles)])}


def beats(row: dict, base: dict) -> dict[str, bool]:
    """Which of the headline and its transfer components (:func:`audiostyle.metrics.headline_parts`: timbre, the
    graded timbre shift; target, from ``lsd_rel``) of ``row`` beat copy-content's; melody cannot, as copying
    keeps all of it."""
    mine, theirs = metrics.headline_parts(row), metrics.headline_parts(base)
    return {"headline": row[metrics.HEADLINE] > base[metrics.HEADLINE],
            **{part: mine[part] > theirs[part] for part in ("timbre", "target")}}


def table(rows: dict[str, dict]) -> list[str]:
    lines = ["| row | LSD (dB) | LSD / copy-content | " + " | ".join(COLUMNS[2:]) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    return lines + [f"| {name} | " + " | ".join(f"{row[c]:.{2 if c.startswith('lsd') else 3}f}" for c in COLUMNS)
                    + " |" for name, row in rows.items()]


def won(row: dict, rows: dict[str, dict]) -> dict[str, bool]:
    """The headline and its transfer components of ``row`` against copy-content's, and LSD and the headline
    against the signal-processing baseline's."""
    eq = rows["eq_match (signal processing)"]
    return {**beats(row, rows["copy content"]), "LSD vs eq_match": row["lsd_db"] < eq["lsd_db"],
            "headline vs eq_match": row[metrics.HEADLINE] > eq[metrics.HEADLINE]}


def verdicts(rows: dict[str, dict], name: str) -> list[str]:
    """Per row of ``name``: :func:`won` as a line."""
    out = []
    for label, row in rows.items():
        if not label.startswith(f"{name}, "):
            continue
        passed = won(row, rows)
        out.append(f"- {label}: " + ", ".join(f"{k} {'beats' if v else 'does NOT beat'}" for k, v in passed.items()))
    return out
