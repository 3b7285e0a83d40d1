"""Mel inversion: librosa's ``mel_to_audio`` (NNLS by L-BFGS-B + Griffin-Lim) vs ``audiostyle.audio.mel_to_audio_torch``.

Both invert the same mel power spectrograms of the demo set's clips (3 s each) with the same Griffin-Lim iteration
count, in the settings of the mel methods (segnet/unet: 256 mels, n_fft 2048, hop 512; spec_gan: 128 mels, hop 256).
librosa inverts clip by clip (its API); ours inverts the whole batch in one call. The variants alternate within
each repeat (librosa, ours, librosa, ours …) and the medians are compared, so the time ratio comes from one run on
one load.

Quality, per clip, then the mean over clips:

- ``nnls residual``: ``‖B X − M‖_F / ‖M‖_F`` of the linear power ``X`` each NNLS finds (``B`` the mel filters);
- ``mel SC``: spectral convergence of the output audio in the mel domain, ``‖mel(y) − M‖_F / ‖M‖_F`` (what a
  listener of the mel method's output gets; 0 = the output's mel is the input mel). Griffin-Lim's random initial
  phase moves it by ±20 % per clip, so every repeat uses another seed and the table gives the mean: with the
  same initial phase the two Griffin-Lims agree to 1e-3 in SC.

Usage::

    python benchmarks/bench_mel_inversion.py                 # 8 clips, 3 repeats, 32 Griffin-Lim iterations
    python benchmarks/bench_mel_inversion.py --quick         # 4 clips, 2 repeats, segnet's setting only
    python benchmarks/bench_mel_inversion.py --device cuda   # ours on the GPU (librosa stays on the CPU)
    python benchmarks/bench_mel_inversion.py --settings spec_gan --out /tmp/mel.md   # one setting
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

SETTINGS = {"segnet": (256, 2048, 512), "spec_gan": (128, 2048, 256)}
"""Name → (n_mels, n_fft, hop_length) of the mel methods' defaults."""


def _librosa(mels: np.ndarray, sr: int, n_fft: int, hop: int, n_iter: int, length: int, seed: int) -> np.ndarray:
    """``librosa.feature.inverse.mel_to_audio``'s two steps, clip by clip, Griffin-Lim seeded like ours."""
    import librosa

    out = []
    for m in mels:
        mag = librosa.feature.inverse.mel_to_stft(m, sr=sr, n_fft=n_fft, power=2.0)
        out.append(librosa.griffinlim(mag, n_iter=n_iter, hop_length=hop, n_fft=n_fft, length=length, random_state=seed))
    return np.stack(out)


def _ours(mels: np.ndarray, sr: int, n_fft: int, hop: int, n_iter: int, length: int, seed: int,
          args: argparse.Namespace) -> np.ndarray:
    import torch

    from audiostyle import audio as A

    y = A.mel_to_audio_torch(torch.from_numpy(mels).to(args.device), sr, n_fft, hop, n_iter=n_iter, length=length,
                             seed=seed, nnls_iter=args.nnls_iters)
    return y.cpu().numpy()


def _quality(mels: np.ndarray, ys: np.ndarray, sr: int, n_fft: int, hop: int) -> float:
    """Mean mel spectral convergence of outputs ``ys (B, samples)`` against their targets ``mels (B, n_mels, T)``."""
    from audiostyle import audio as A

    p = A.StftParams(n_fft=n_fft, hop_length=hop)
    return float(np.mean([np.linalg.norm(A.mel(y, sr, n_mels=m.shape[0], params=p) - m) / np.linalg.norm(m)
                          for m, y in zip(mels, ys)]))


def _nnls_residuals(mels: np.ndarray, sr: int, n_fft: int, args: argparse.Namespace) -> tuple[float, float]:
    import librosa
    import torch

    from audiostyle import audio as A

    basis = A.mel_filters(sr, n_fft, mels.shape[1])
    ours = A.mel_to_stft_torch(torch.from_numpy(mels).to(args.device), sr, n_fft, 1.0, args.nnls_iters).cpu().numpy()
    theirs = [librosa.util.nnls(basis, m) for m in mels]

    def res(xs) -> float:
        return float(np.mean([np.linalg.norm(basis @ x - m) / np.linalg.norm(m) for x, m in zip(xs, mels)]))

    return res(theirs), res(ours)


def run(name: str, args: argparse.Namespace) -> str:
    from audiostyle import audio as A
    from audiostyle.data import synth

    n_mels, n_fft, hop = SETTINGS[name]
    clips = synth.demo_dataset().clips[: args.clips]
    sr, length = clips[0].sr, min(len(c.audio) for c in clips)
    p = A.StftParams(n_fft=n_fft, hop_length=hop)
    mels = np.stack([A.mel(c.audio[:length], sr, n_mels=n_mels, params=p) for c in clips])
    times: dict[str, list[float]] = {"librosa": [], "ours": []}
    quality: dict[str, list[float]] = {"librosa": [], "ours": []}
    _ours(mels[:1], sr, n_fft, hop, 2, length, 0, args)  # warm-up (allocator, constants)
    for seed in range(args.repeats):  # repeat r: Griffin-Lim's initial phase from seed r, for both
        for variant in ("librosa", "ours"):
            t = time.perf_counter()
            out = (_librosa(mels, sr, n_fft, hop, args.iters, length, seed) if variant == "librosa"
                   else _ours(mels, sr, n_fft, hop, args.iters, length, seed, args))
            times[variant].append((time.perf_counter() - t) / len(mels))
            quality[variant].append(_quality(mels, out, sr, n_fft, hop))
    t_lib, t_ours = statistics.median(times["librosa"]), statistics.median(times["ours"])
    q_lib, q_ours = (float(np.mean(quality[v])) for v in ("librosa", "ours"))
    r_lib, r_ours = _nnls_residuals(mels, sr, n_fft, args)
    return (f"| {name}: {n_mels} mels, n_fft {n_fft}, hop {hop} | {len(mels)} × {length / sr:.1f} s | "
            f"{t_lib:.3f} | {t_ours:.3f} | **{t_ours / t_lib:.2f}** | {q_lib:.4f} | {q_ours:.4f} | "
            f"**{q_ours / q_lib:.2f}** | {r_lib:.5f} | {r_ours:.5f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="4 clips, 2 repeats, segnet's setting only")
    p.add_argument("--clips", type=int, default=8, help="demo clips inverted (one batch for ours)")
    p.add_argument("--repeats", type=int, default=3, help="alternating timed repeats per variant (median)")
    p.add_argument("--iters", type=int, default=32, help="Griffin-Lim iterations (both)")
    p.add_argument("--device", default="cpu", help="where ours runs: cpu or cuda")
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=None,
                   help="settings to run (default: all; --quick: segnet)")
    p.add_argument("--nnls-iters", type=int, default=None, help="ours' NNLS iterations (default MEL_NNLS_ITERS)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mel_inversion.md")
    args = p.parse_args(argv)
    if args.quick:
        args.clips, args.repeats = 4, 2
    import machine

    from audiostyle import audio as A

    args.nnls_iters = A.MEL_NNLS_ITERS if args.nnls_iters is None else args.nnls_iters

    lines = [f"# Mel inversion, librosa vs audiostyle (ours on {args.device})", "",
             f"Machine: {machine.describe(args.device)}.", "",
             f"`python benchmarks/bench_mel_inversion.py {' '.join(argv if argv is not None else sys.argv[1:])}`: "
             f"{args.iters} Griffin-Lim iterations, {args.nnls_iters} projected-gradient NNLS iterations (ours); "
             f"{args.repeats} alternating repeats, repeat r seeding both Griffin-Lims' initial phase with r: "
             "time = median seconds per clip, mel SC = mean over clips and repeats.", "",
             "| setting | clips | librosa s/clip | ours s/clip | time ratio | librosa mel SC | ours mel SC | "
             "quality ratio (SC) | librosa NNLS residual | ours NNLS residual |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name in args.settings or (["segnet"] if args.quick else list(SETTINGS)):
        lines.append(run(name, args))
        print(lines[-1], flush=True)
    lines.append(f"\nLoad at the end: {machine.load_now()}.")
    print(lines[-1])
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
