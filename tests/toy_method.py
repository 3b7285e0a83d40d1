"""A quick method with a known optimum, for testing the sweep engine without training a network.

``transfer_score`` after ``steps`` steps is ``quality(x, y, kind) * step / steps`` where
``quality = 1 - (x - 0.3)² - ((y - 5) / 10)²`` (+0.05 for ``kind="b"``): the optimum is x = 0.3,
y = 5, kind = b. It reports ``loss`` every step and the common metrics every ``report_every`` steps
(with a resumable state), sleeps ``sleep_s`` per step, writes a wav and a png at the end, and fails on
demand: ``fail="raise"`` raises AudiostyleError, ``fail="nan"`` lets the loss diverge to NaN
(FloatingPointError), ``fail="oom"`` raises torch's CUDA out-of-memory error (as a co-tenant on a shared GPU
causes), all at ``fail_at``. With ``meet`` set it trains inside the named Ray actor :class:`Room`, first waiting
(``meet_s`` at most) for a second trial to be inside too: the room's count shows whether trials really ran at the
same time, whatever the machine's speed.
"""

from __future__ import annotations

import contextlib
import math
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from audiostyle.errors import AudiostyleError, check_choice, check_range
from audiostyle.methods.base import Method, TrialContext
from audiostyle.methods.space import Choice, Float, Int
from audiostyle.metrics import Objective


@dataclass
class ToyConfig:
    x: float = 0.5
    y: int = 2
    kind: str = "a"
    steps: int = 8
    report_every: int = 2
    sleep_s: float = 0.0
    fail: str = "none"
    fail_at: int = 3
    seed: int = 0
    label: str | None = None
    meet: str = ""
    meet_s: float = 120.0
    preset: str = "none"

    def __post_init__(self) -> None:
        check_range("x", self.x, 0.0, 1.0)
        check_range("y", self.y, 0, 10)
        check_choice("kind", self.kind, ("a", "b"))
        check_range("steps", self.steps, 1, 10**6)
        check_range("report_every", self.report_every, 1, 10**6)
        check_choice("fail", self.fail, ("none", "raise", "nan", "oom"))


ROOM_NAMESPACE = "audiostyle-tests"


class Room:
    """A Ray actor that counts the trials inside it: :attr:`most` is the most that were ever inside at once."""

    def __init__(self) -> None:
        self.inside = self.most = 0

    def enter(self) -> None:
        self.inside += 1
        self.most = max(self.most, self.inside)

    def leave(self) -> None:
        self.inside -= 1

    def most_inside(self) -> int:
        return self.most


@contextlib.contextmanager
def meeting(name: str, timeout_s: float):
    """Be inside the :class:`Room` actor ``name`` while the block runs, after waiting (at most ``timeout_s``)
    until a second trial has been inside with this one; nothing when ``name`` is empty."""
    if not name:
        yield
        return
    import ray

    room = ray.get_actor(name, namespace=ROOM_NAMESPACE)
    ray.get(room.enter.remote())
    try:
        deadline = time.monotonic() + timeout_s
        while ray.get(room.most_inside.remote()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        yield
    finally:
        ray.get(room.leave.remote())


def quality(config: ToyConfig) -> float:
    """The value ``transfer_score`` reaches at the last step."""
    return 1.0 - (config.x - 0.3) ** 2 - ((config.y - 5) / 10) ** 2 + (0.05 if config.kind == "b" else 0.0)


def _png(path: Path, image: np.ndarray) -> None:
    """Write a greyscale uint8 image (H, W) as a PNG without any imaging library."""
    height, width = image.shape
    raw = b"".join(b"\x00" + image[r].tobytes() for r in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class Toy(Method):
    name = "toy"
    Config = ToyConfig
    headline = Objective("transfer_score", "max")

    @classmethod
    def default_space(cls):
        return {"x": Float(0.0, 1.0), "y": Int(0, 10), "kind": Choice(("a", "b"))}

    @classmethod
    def presets(cls) -> dict[str, dict[str, Any]]:
        return {"small": {"y": 7, "steps": 4, "report_every": 1}}

    @classmethod
    def best_known(cls) -> list[dict[str, Any]]:
        return [{"x": 0.3, "y": 5, "kind": "b"}]

    def prepare(self, dataset, config):
        return {"n_clips": len(dataset.clips), "sr": dataset.sr, "first": dataset.clips[0].audio[:2048].copy()}

    def metrics(self, config: ToyConfig, step: int) -> dict[str, float]:
        score = quality(config) * step / config.steps
        return {
            "transfer_score": score,
            "melody": 1.0 - config.x,
            "timbre_dist": config.x + 0.1 * abs(config.y - 5),
            "target_prob": score,
            "lsd_db": 10.0 * (1.0 - score),
            "lsd_rel": 1.0 - score,
            "fad": 1.0 - score,
        }

    def train(self, config: ToyConfig, data: Mapping[str, Any], ctx: TrialContext) -> dict[str, float]:
        if data["n_clips"] < 1:
            raise AudiostyleError("toy: no clips")
        with meeting(config.meet, config.meet_s):
            return self._train(config, data, ctx)

    def _train(self, config: ToyConfig, data: Mapping[str, Any], ctx: TrialContext) -> dict[str, float]:
        start = int(ctx.resume_state["step"]) if ctx.resume_state else 0
        final: dict[str, float] = {}
        for step in range(start + 1, config.steps + 1):
            if config.sleep_s:
                time.sleep(config.sleep_s)
            if config.fail == "raise" and step == config.fail_at:
                raise AudiostyleError(f"toy: asked to fail at step {step} (fail='raise')")
            if config.fail == "oom" and step == config.fail_at:
                import torch

                raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 20.00 GiB (toy, step {step})")
            loss = 1.0 / step if not (config.fail == "nan" and step >= config.fail_at) else math.nan
            if not math.isfinite(loss):
                raise FloatingPointError(f"toy: loss became nan at step {step}; lower lr")
            metrics = {"loss": loss}
            state = None
            if step % config.report_every == 0 or step == config.steps:
                final = self.metrics(config, step)
                metrics.update(final)
                state = {"step": step, "x": config.x}
            ctx.report(step, metrics, state)
        if ctx.artifact_dir is not None:
            self.write_artifacts(config, data, Path(ctx.artifact_dir))
        return final or self.metrics(config, config.steps)

    def write_artifacts(self, config: ToyConfig, data: Mapping[str, Any], out: Path) -> None:
        import soundfile as sf

        out.mkdir(parents=True, exist_ok=True)
        sf.write(out / "output.wav", np.asarray(data["first"], dtype=np.float32) * config.x, data["sr"])
        _png(out / "spectrogram.png", (np.outer(np.arange(16), np.arange(24)) % 256).astype(np.uint8))

    def render(self, config, state, audio, sr, *, style=None, device="cpu"):
        return np.asarray(audio, dtype=np.float32) * config.x


if __name__ == "__main__":  # `python -m tests.toy_method --flags`: a sweep of the toy through the shared CLI
    import sys

    from audiostyle import methods
    from audiostyle.sweep import Budget, main

    methods.register("toy", "tests.toy_method:Toy")
    sys.exit(main("toy", "Sweep the toy method (tests only).", Budget(samples=6, smoke_samples=6)))
