"""The command line every ``sweeps/<method>.py`` shares: :class:`Budget`, the flags, ``--set``/``--config``, ``main``.

Fixed config values layer in this order, each on top of the one before: the budget's ``steps``, the script's
``overrides``, ``demo_overrides`` (with ``--data demo``), the method's ``--preset`` (e.g. ``cpu``: a network and
step budget a 2-core machine trains in minutes), with ``--smoke`` the method's
:meth:`~audiostyle.methods.base.Method.smoke_overrides` and then the script's ``smoke_overrides``, the unsearched
fields of ``--config FILE`` (its searched fields become the searcher's first point), ``--set KEY=VALUE``, then
``--steps``. So a budget never replaces a value the user fixed (``--set steps=50`` or ``steps`` in the file);
``--steps`` and a different ``steps`` from the user are refused.

With ``--resume`` only the flags the user gave are passed on (the sweep's plan holds the rest); any that asks
for something other than the plan is refused, listed (see :mod:`audiostyle.sweep._plan`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from audiostyle import methods
from audiostyle.cli_help import HelpFormatter, config_epilog
from audiostyle.errors import AudiostyleError
from audiostyle.methods.fields import field_types, parse_text
from audiostyle.metrics import PARETO_OBJECTIVES
from audiostyle.methods.space import Space
from audiostyle.store import DEFAULT_ROOT
from audiostyle.sweep._console import configure_logging
from audiostyle.sweep._schedule import SCHEDULERS
from audiostyle.sweep._search import SEARCHERS


@dataclass
class Budget:
    """A sweep script's budgets: trials, steps and fixed config values, for a full run and for ``--smoke``.

    ``overrides`` are fixed in every run of the script (e.g. data fields a sweep must not vary, since the data
    is prepared once); ``demo_overrides`` come on top with ``--data demo`` (e.g. the demo set's domain pair that
    transfers best); with ``--smoke`` the method's own smoke config
    (:meth:`~audiostyle.methods.base.Method.smoke_overrides`), then ``smoke_overrides`` on top (see the module notes
    for the whole order).
    """

    samples: int = 16
    steps: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    demo_overrides: dict[str, Any] = field(default_factory=dict)
    smoke_samples: int = 4
    smoke_steps: int | None = None
    smoke_overrides: dict[str, Any] = field(default_factory=dict)
    max_concurrent: int | None = None


def load_config_file(path: str) -> dict[str, Any]:
    """Flat ``{field: value}`` config from a YAML or JSON file (what ``audiostyle.best --export`` writes)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            values = yaml.safe_load(f)  # JSON is YAML too
    except OSError as exc:
        raise AudiostyleError(f"cannot read config file {path!r}: {exc.strerror}. Give an existing YAML/JSON file.") from exc
    except yaml.YAMLError as exc:
        raise AudiostyleError(f"config file {path!r} is not valid YAML/JSON: {exc}") from exc
    if not isinstance(values, dict):
        raise AudiostyleError(f"config file {path!r} must hold a mapping of config fields to values, got {type(values).__name__}.")
    return values


def split_config(values: Mapping[str, Any], space: Space) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(fixed, start)``: a config file's values outside the searched ``space`` are fixed; those inside are
    the searcher's first point, so a sweep starts from (and searches around) that config."""
    fixed = {k: v for k, v in values.items() if k not in space}
    start = {k: v for k, v in values.items() if k in space}
    return fixed, start


def parse_overrides(items: Iterable[str], config_cls: type) -> dict[str, Any]:
    """``["alpha=0.01", "pooling=none"]`` → ``{"alpha": 0.01, "pooling": "none"}``, each value parsed by its
    field's type (:func:`audiostyle.methods.fields.parse_text`).

    Raises :class:`AudiostyleError` for an item without ``=``, an unknown field or a value of the wrong type.
    """
    kinds = field_types(config_cls)
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise AudiostyleError(f"--set {item!r}: write KEY=VALUE, e.g. --set alpha=0.006 --set activation=tanh.")
        if key not in kinds:
            raise AudiostyleError(f"--set {item!r}: unknown config key {key!r}; known keys: {', '.join(sorted(kinds))}.")
        out[key] = parse_text(key, text, kinds[key])
    return out


def build_parser(description: str, budget: Budget, variants: Mapping[str, str] | None = None,
                 epilog: str = "") -> argparse.ArgumentParser:
    """The argument parser every ``sweeps/<method>.py`` shares (``variants``: ``--variant`` label → method name,
    the first being the default, e.g. ``{"plain": "wave_vae", "pool": "wave_vae_pool"}``; ``epilog``: text
    before the closing line, e.g. :func:`audiostyle.cli_help.config_epilog`)."""
    closing = "Runs locally, or on a cluster: ray submit cluster/gpu.yaml sweeps/<script>.py -- --flags"
    p = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter,
                                epilog=f"{epilog}\n\n{closing}" if epilog else closing)
    if variants:
        p.add_argument("--variant", choices=list(variants), default=next(iter(variants)),
                       help="method variant to sweep: " + ", ".join(f"{k} = {v}" for k, v in variants.items()))
    p.add_argument("--data", default=None, help="dataset: 'demo' (4 synthetic instruments), 'bench' (9 sampled instruments "
                   "rendered by FluidSynth; soundfont from $AUDIOSTYLE_SOUNDFONT), a folder, or s3://bucket/prefix (default demo)")
    p.add_argument("--store", default=DEFAULT_ROOT, help="result store: folder or s3://bucket/prefix")
    p.add_argument("--samples", type=int, default=None, help=f"number of trials (default {budget.samples}; smoke {budget.smoke_samples})")
    p.add_argument("--steps", type=int, default=None, help="step budget per trial (default: --set/--config steps, else the script's budget, else the method's)")
    p.add_argument("--gpus-per-trial", type=float, default=None, help="GPU share per trial (0.25: four trials per GPU; default 0)")
    p.add_argument("--cpus-per-trial", type=float, default=None, help="CPUs per trial (default 1)")
    p.add_argument("--max-concurrent", type=int, default=budget.max_concurrent, help="trials at once (default: what the cluster holds)")
    p.add_argument("--search", choices=SEARCHERS, default=None, help="Optuna sampler (default tpe; nsga2 with --pareto)")
    p.add_argument("--population", type=int, default=None, help="NSGA-II population (default a quarter of the trials, 2 to 50)")
    p.add_argument("--scheduler", choices=SCHEDULERS, default=None, help="early stopping (default halving: synchronous successive "
                   "halving on the headline, trials wait at each rung for the others; asha with --pareto: the "
                   "non-dominated rank); asha: asynchronous, no waits; pbt mutates learning rates and loss weights")
    p.add_argument("--pareto", action="store_true", help="multi-objective: melody (max) vs timbre_dist (min), NSGA-II")
    p.add_argument("--config", default=None, metavar="FILE", help="a YAML/JSON config (e.g. from `audiostyle.best --export`): its searched fields are the first trial, the rest are fixed")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="fix a config value, parsed by the field's type (repeatable)")
    p.add_argument("--seed", type=int, default=None, help="seed of the sampler and the trials (default 0); the data's train/val/test "
                   "splits are the same for every seed")
    p.add_argument("--name", default=None, help="sweep id (default: method and UTC time); with --resume, the sweep to resume")
    p.add_argument("--resume", action="store_true", help="continue the latest (or --name) interrupted sweep in --store; "
                   "other flags must match the sweep's (a conflicting one is refused, listed)")
    p.add_argument("--storage", default=None, help="Ray storage for checkpoints/experiment state (default <store>/_ray)")
    p.add_argument("--address", default=None, help="Ray address: default a running cluster if any, else local; 'local' forces a new one")
    p.add_argument("--preset", default=None, metavar="NAME", help="a named config of the method, fixed for every trial "
                   "and stored with it (e.g. cpu: sized for a 2-core machine; the list is under config keys below)")
    p.add_argument("--smoke", action="store_true", help="tiny sweep: few trials and steps, on the small demo set unless --data is given (about a minute here)")
    p.add_argument("--no-warm-start", dest="warm_start", action="store_false", default=None, help="do not start "
                   "from the best configs of the method's earlier sweeps in --store (by default they run first)")
    p.add_argument("--trial-budget", type=float, default=None, metavar="SECONDS", help="seconds a trial may "
                   "spend in its method (start-up left out): one past it is stopped, kept with its last metrics and told to Optuna as pruned (default: no limit)")
    p.add_argument("--max-failures", type=int, default=None, help="retries of a trial lost to a node failure (default 2)")
    p.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard with a local Ray")
    p.add_argument("--top", type=int, default=5, help="rows in the final summary")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="Ray Tune's live table and every INFO line of Ray and audiostyle (default: one line per trial)")
    return p


def _preset(args: argparse.Namespace, method: methods.Method) -> dict[str, Any]:
    """The values of ``--preset`` with its name (``{}`` without one)."""
    return method.expand_preset({"preset": args.preset}) if args.preset else {}


def _fixed(args: argparse.Namespace, budget: Budget, method: methods.Method, file_fixed: Mapping[str, Any]) -> dict[str, Any]:
    """The fixed config values in the module's order; only the user's own (and the preset's) with ``--resume``."""
    user = {**file_fixed, **parse_overrides(args.overrides, method.Config)}
    if args.steps is not None and user.get("steps", args.steps) != args.steps:
        raise AudiostyleError(f"--steps {args.steps} and steps={user['steps']} (--set/--config) disagree: give the budget once.")
    if args.steps is not None:
        user["steps"] = args.steps
    if args.resume:
        return {**_preset(args, method), **user}
    steps = budget.smoke_steps if args.smoke else budget.steps
    data = args.data or "demo"
    return {
        **({"steps": steps} if steps else {}),
        **budget.overrides,
        **(budget.demo_overrides if data == "demo" else {}),
        **_preset(args, method),
        **({**method.smoke_overrides(), **budget.smoke_overrides} if args.smoke else {}),
        **user,
    }


def settings_from_args(args: argparse.Namespace, budget: Budget, method: str, space: Space) -> dict[str, Any]:
    """``sweep.run`` keyword arguments from a script's parsed flags (see the module notes)."""
    m = methods.get(method)
    file_fixed, start = split_config(load_config_file(args.config) if args.config else {}, space)
    fixed = _fixed(args, budget, m, file_fixed)
    given = {
        "overrides": fixed or None, "data": args.data, "samples": args.samples, "max_concurrent": args.max_concurrent,
        "cpus_per_trial": args.cpus_per_trial, "gpus_per_trial": args.gpus_per_trial, "search": args.search,
        "population": args.population, "objectives": PARETO_OBJECTIVES if args.pareto else None, "scheduler": args.scheduler,
        "seed": args.seed, "storage": args.storage, "max_failures": args.max_failures, "trial_budget_s": args.trial_budget,
        "warm_start": args.warm_start,
        "points": [{k: v for k, v in start.items() if k not in fixed}] if start else (),
    }
    if args.resume:
        return {"smoke": True if args.smoke else None, **given}
    samples = args.samples if args.samples is not None else budget.smoke_samples if args.smoke else budget.samples
    return {**given, "space": space, "data": args.data or "demo", "samples": samples, "smoke": args.smoke}


def main(
    method: str,
    description: str,
    budget: Budget,
    *,
    space: Space | None = None,
    variants: Mapping[str, str] | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    """Parse a sweep script's flags, run the sweep, print its summary; the exit status: 0 when the sweep ended, 1
    when every trial failed, 2 on bad input (one ``error:`` line), :data:`INTERRUPTED` when SIGINT or SIGTERM
    stopped it (the ``--resume`` command printed).

    ``space`` holds only what the script searches differently from the method's ``default_space()``: its
    dimensions replace or add to the default ones (for every variant).
    """
    from audiostyle.sweep._result import SweepInterrupted
    from audiostyle.sweep._run import run

    default = next(iter(variants.values())) if variants else method
    epilog = config_epilog(methods.get(default), {**methods.get(default).default_space(), **(space or {})})
    if variants:
        epilog = f"{epilog}\n(for --variant {next(iter(variants))}; the other variants' keys: --variant V --help)"
    args = build_parser(description, budget, variants, epilog).parse_args(argv)
    configure_logging(args.verbose)
    chosen = (variants or {}).get(getattr(args, "variant", None), method)
    try:
        if args.top < 1:
            raise AudiostyleError(f"--top {args.top}: the summary needs at least one row; pass --top 1 or more.")
        searched = {**methods.get(chosen).default_space(), **(space or {})}
        settings = settings_from_args(args, budget, chosen, searched)
        result = run(chosen, store=args.store, resume=args.resume, name=args.name, address=args.address,
                     dashboard=not args.no_dashboard, verbose=args.verbose, **settings)
    except AudiostyleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SweepInterrupted as exc:
        if exc.result is not None:
            print()
            print(exc.result.summary(top=args.top))
        if exc.stored:
            print(f"interrupted: {exc}. Continue it with: {resume_command(exc.plan)}", file=sys.stderr)
        else:
            print(f"interrupted: {exc}, before anything of it was stored. Start it again with: "
                  f"{shlex.join(['python', *sys.argv])}", file=sys.stderr)
        return INTERRUPTED
    print()
    print(result.summary(top=args.top))
    failed = result.all_failed()
    if failed is not None:
        print(f"error: every trial of sweep {result.sweep_id} failed; the first: {failed}", file=sys.stderr)
        return 1
    return 0


INTERRUPTED = 130
"""The exit status of a sweep stopped by SIGINT or SIGTERM (the shell's for SIGINT)."""


def resume_command(plan: Any) -> str:
    """The command line that continues ``plan``'s sweep: this script with ``--resume``, its store and name."""
    return shlex.join(["python", sys.argv[0], "--resume", "--store", plan.store, "--name", plan.sweep_id])
