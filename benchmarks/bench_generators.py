"""Do the generators learn? ``spec_gan``, ``wave_vae`` and ``wave_vae_pool`` at their ``"cpu"`` preset on one domain.

For each method: prepare the domain (``--data``, default ``bench``; ``--domain``, default violin), train the preset
with the shared loop, and print its learning curve (every report: losses, ``fad``, ``recon_rel``, wall and CPU
seconds), then the comparison table at the same sample rate and example length:

- ``fad``: the method's headline, samples' frame MFCCs against the domain's train clips (band-limited to ``sr``);
- ``fad_test``: the same Fréchet distance against the domain's **test** clips (held out from training and from the
  sweep's choices), pooled frames of every test clip;
- rows: the trained preset, the same networks untrained (seed 0), white noise at the data's RMS, and real held-out
  clips (the first ``eval_samples`` validation examples, joined as the samples are).

Prints markdown (the machine line first).

``--sweep N`` instead sweeps each method at its ``cpu`` preset (``N`` trials on a local Ray, no early stopping,
the first trial the preset's own config, the rest drawn by Optuna; ranked on ``fad``, the train clips) and tables
the preset trial's and the winner's final checkpoints on ``fad_test`` beside the same rows (untrained, noise, real
held-out), with the verdicts; the section goes on top of ``benchmarks/results/quality.md``. Examples::

    nice -n 5 python benchmarks/bench_generators.py spec_gan wave_vae --threads 2
    nice -n 5 python benchmarks/bench_generators.py spec_gan wave_vae --steps 300 1500 --report-every 100 250
    python benchmarks/bench_generators.py --sweep 3          # the quality.md rows of every generator
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_sweep import local_sweep, preset_and_winner  # noqa: E402
from machine import describe  # noqa: E402

from audiostyle import analysis, methods, metrics  # noqa: E402
from audiostyle import audio as A  # noqa: E402
from audiostyle.data import load_dataset  # noqa: E402
from audiostyle.methods.base import TrialContext  # noqa: E402
from audiostyle.methods.generative import joined  # noqa: E402
from audiostyle.methods.trained import evaluation  # noqa: E402
from audiostyle.store import ARTIFACT_CHECKPOINT, Store  # noqa: E402

QUALITY = Path(__file__).resolve().parent / "results" / "quality.md"
PRESET = "cpu"

CURVE_KEYS = ("fad", "timbre_dist", "recon_rel", "loss_mse", "loss_kl", "loss_g", "loss_d", "diversity")


def _frames(clips: list[np.ndarray], sr: int, reference: metrics.Reference) -> np.ndarray:
    return np.concatenate([reference.frames(metrics.clip_features(y, sr)) for y in clips])


def fad_to(samples: list[np.ndarray], sr: int, reference: metrics.Reference, mean: np.ndarray, cov: np.ndarray) -> float:
    """Fréchet distance of ``samples``' pooled standardised frames to the Gaussian ``(mean, cov)``."""
    f = _frames(joined(samples, sr), sr, reference)
    return metrics.frechet_distance(f.mean(axis=0), np.cov(f, rowvar=False), mean, cov)


def run(name: str, dataset, domain: str, steps: int | None = None, report_every: int | None = None) -> str:
    method = methods.get(name)
    preset = method.presets()["cpu"]
    cut = {"steps": steps, "report_every": report_every, "checkpoint_every": 0} if steps else {}
    config = method.make_config({**preset, "domain": domain, **cut})
    data = method.prepare(dataset, config)
    clips = getattr(data, "clips", data)
    lines = [f"### {name}, preset `cpu`" + (f", its first {steps} steps" if steps else ""), "",
             f"Config: `{preset}`; {len(clips.train)} training "
             f"examples of {clips.length} samples at {clips.sr} Hz; "
             f"{len(dataset.select(domain, 'test'))} test clips.", ""]
    start, cpu0 = time.time(), time.process_time()
    curve = ["| step | wall s | CPU s | " + " | ".join(CURVE_KEYS) + " |", "|" + "---:|" * (3 + len(CURVE_KEYS))]

    def report(step, m, state=None):
        cells = [f"{m[k]:.4g}" if k in m else "" for k in CURVE_KEYS]
        curve.append(f"| {step} | {time.time() - start:.0f} | {time.process_time() - cpu0:.0f} | " + " | ".join(cells) + " |")
        print(curve[-1], flush=True)

    ctx = TrialContext(report=report, seed=0)
    final = method.train(config, data, ctx)
    wall, cpu = time.time() - start, time.process_time() - cpu0
    lines += [f"Training: {wall:.0f} s wall, {cpu:.0f} s CPU (both threads), {config.steps} steps.", "", *curve, ""]

    trained = method.restore_modules(config, ctx.last_state, data=data)
    samples = {"trained (preset cpu)": (list(method.generate(trained, config, config.eval_samples)), final)}
    return "\n".join(lines + comparison(method, config, data, domain_test(dataset, domain, clips), samples) + [""])


def domain_test(dataset, domain: str, clips) -> tuple[np.ndarray, np.ndarray]:
    """The Gaussian ``(mean, cov)`` of the domain's **test** clips' standardised frames at the model's rate."""
    test = [A.resample(c.audio, c.sr, clips.sr) for c in dataset.select(domain, "test")]
    tf = _frames(test, clips.sr, clips.reference)
    return tf.mean(axis=0), np.cov(tf, rowvar=False)


def comparison(method, config, data, test_gauss, samples: dict) -> list[str]:
    """Table lines: ``samples`` (``{label: (waveforms, final metrics row or None)}``), then the same networks
    untrained (seed 0), white noise at the data's RMS and real held-out clips, on ``fad``, ``fad_test``,
    ``timbre_dist`` and (VAEs) ``recon_rel``. The baseline rows' values are also returned in ``samples``."""
    clips = getattr(data, "clips", data)
    sr, n = clips.sr, config.eval_samples
    torch.manual_seed(0)
    parts = method.build(config, method.adapt(data, config), torch.device("cpu"))
    parts.config = config
    with evaluation(parts, torch.device("cpu")):
        untrained = method.evaluate(parts, config, method.adapt(data, config), torch.device("cpu"))
    rng = np.random.default_rng(0)
    rms = float(np.sqrt(np.mean(np.square(clips.train))))
    samples.update({
        "untrained generator": (list(method.generate(parts.modules, config, n)), untrained),
        "white noise at the data's RMS": (list(rng.normal(0, rms, (n, clips.length)).astype(np.float32)), None),
        "real held-out clips (val)": (list(clips.val[:n]), None),
    })
    lines = ["| samples | fad (to train clips) | fad_test (to test clips) | timbre_dist | recon_rel |",
             "|---|---:|---:|---:|---:|"]
    for label, (waves, row) in list(samples.items()):
        m = metrics.evaluate(joined(waves, sr), None, sr, clips.reference, config.domain)
        m["fad_test"] = fad_to(waves, sr, clips.reference, *test_gauss)
        samples[label] = (waves, {**(row or {}), **{k: m[k] for k in ("fad", "fad_test", "timbre_dist")}})
        recon = f"{row['recon_rel']:.3f}" if row and "recon_rel" in row else ""
        lines.append(f"| {label} | {m['fad']:.2f} | {m['fad_test']:.2f} | {m['timbre_dist']:.3g} | {recon} |")
    if any(row and "recon_rel" in row for _, row in samples.values()):
        lines.append("| silence (reconstruction) | | | | 1.000 |")
    return lines


def swept(name: str, dataset, args: argparse.Namespace, store: str, steps: int | None) -> list[str]:
    """``name`` swept at its ``cpu`` preset (``args.sweep`` trials of its steps or ``steps``, scheduler none): the
    preset trial's and the winner's samples against the baselines, the budget and the verdicts (markdown lines)."""
    method = methods.get(name)
    preset = method.presets()[PRESET]
    overrides = {"preset": PRESET, "domain": args.domain}
    if steps:
        overrides.update({"steps": steps, "report_every": steps, "checkpoint_every": 0})
    result = local_sweep(name, data=args.data, store=store, samples=args.sweep, overrides=overrides,
                         scheduler="none")
    trials, preset_trial, chosen, first = preset_and_winner(result, name)
    samples, prepared = {}, []
    for label, trial in ((f"`{PRESET}` preset (the reports' config)", preset_trial), ("sweep's best", result.best)):
        config = method.make_config(analysis.config_of(trial, name))
        data = method.prepare(dataset, config)
        prepared.append((config, data))
        state = Store(store).load_checkpoint(trial[ARTIFACT_CHECKPOINT])
        modules = method.restore_modules(config, state, data=method.adapt(data, config))
        row = {k[len("metric."):]: v for k, v in trial.items() if k.startswith("metric.")}
        samples[label] = (list(method.generate(modules, config, config.eval_samples)), row)
    preset_config, preset_data = prepared[0]  # the baselines use the preset's networks and data
    table = comparison(method, preset_config, preset_data,
                       domain_test(dataset, args.domain, getattr(preset_data, "clips", preset_data)), samples)
    val = ", ".join(f"{t['metric.fad']:.2f}" for _, t in trials.iterrows())
    steps = steps or int(preset["steps"])
    lines = [f"### {name}", "", *table, "",
             f"Budget: preset `{PRESET}` = `{preset}`" + (f", steps cut to {steps}" if steps != preset["steps"] else "")
             + f"; {len(trials)} trials of {steps} steps (scheduler none), ranked on `fad` (train clips): "
             f"{val}; winner `{chosen}`" + (" (the preset's own config)" if chosen == first else "") + ".", ""]
    return lines + verdicts(name, samples)


def verdicts(name: str, samples: dict) -> list[str]:
    """Each trained row against the untrained generator, white noise and the preset, on ``fad_test``."""
    rows = {label: row for label, (_, row) in samples.items()}
    untrained, noise = rows["untrained generator"]["fad_test"], rows["white noise at the data's RMS"]["fad_test"]
    preset = next(row for label, row in rows.items() if label.startswith(f"`{PRESET}`"))["fad_test"]
    out = []
    for label in [k for k in rows if k.startswith(f"`{PRESET}`") or k == "sweep's best"]:
        t = rows[label]["fad_test"]
        said = [f"{'beats' if t < untrained else 'does NOT beat'} the untrained generator ({t:.2f} vs {untrained:.2f})",
                f"{'beats' if t < noise else 'does NOT beat'} white noise ({noise:.2f})"]
        if label == "sweep's best":
            said.append(f"{'beats' if t < preset else 'does NOT beat'} the preset's config ({preset:.2f})")
        out.append(f"- {name}, {label}, on `fad_test`: " + ", ".join(said))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("methods", nargs="*", default=["spec_gan", "wave_vae", "wave_vae_pool"])
    ap.add_argument("--data", default="bench")
    ap.add_argument("--domain", default="violin")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, nargs="*", default=[],
                    help="train only this many of each preset's steps (one per method, in order); default: all")
    ap.add_argument("--report-every", type=int, nargs="*", default=[], help="with --steps: report interval per method")
    ap.add_argument("--sweep", type=int, default=0, metavar="N",
                    help=f"sweep each method at its preset (N trials) and put the section on top of {QUALITY.name}")
    ap.add_argument("--out", type=Path, default=QUALITY, help="with --sweep: the results file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.data)
    started, machine = time.perf_counter(), describe()
    print(f"Machine: {machine}\n", flush=True)
    sections: list[str] = []
    with tempfile.TemporaryDirectory() as work:
        for i, name in enumerate(args.methods):
            steps = args.steps[i] if i < len(args.steps) else None
            if args.sweep:
                sections += swept(name, dataset, args, str(Path(work) / name), steps) + [""]
                print("\n".join(sections), flush=True)
                continue
            every = args.report_every[i] if i < len(args.report_every) else None
            print(run(name, dataset, args.domain, steps, every or steps), flush=True)
    print(f"Machine at the end: {describe()}")
    if args.sweep:
        _publish(args, sections, machine, time.perf_counter() - started)


def _publish(args: argparse.Namespace, sections: list[str], machine: str, seconds: float) -> None:
    """The sweep sections under a dated heading, on top of ``args.out`` (its title kept, earlier sections below)."""
    earlier = args.out.read_text().splitlines() if args.out.exists() else []
    title, earlier = (earlier[0], earlier[1:]) if earlier and earlier[0].startswith("# ") else ("# Quality", earlier)
    head = [f"## {', '.join(args.methods)} on `{args.data}`: {args.domain}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
            f"`python benchmarks/bench_generators.py {' '.join(args.methods)} --sweep {args.sweep}"
            + (f" --steps {' '.join(map(str, args.steps))}" if args.steps else "")
            + f"`. Machine: {machine} (at the start); {seconds:.0f} s in all. Samples of each generator (its "
            "`eval_samples` at its rate, joined into clips) against the domain's train clips (`fad`, what the sweep "
            "ranks on) and its held-out **test** clips (`fad_test`); `recon_rel`: a VAE's reconstruction error on "
            "the validation examples over returning silence's.", ""]
    args.out.write_text("\n".join([title, "", *head, *sections, *earlier]) + "\n")


if __name__ == "__main__":
    main()
