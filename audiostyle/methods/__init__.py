"""The registry of methods: a name maps to a :class:`~audiostyle.methods.base.Method` class.

Modules are imported on first use so that importing the registry stays cheap.
"""

from __future__ import annotations

import importlib
import importlib.util

from audiostyle.errors import AudiostyleError
from audiostyle.methods.base import Method, TrialContext

# name -> "module:Class"
_REGISTRY: dict[str, str] = {
    "shallow_cnn": "audiostyle.methods.shallow_cnn:ShallowCNN",
    "cyclegan": "audiostyle.methods.cyclegan:CycleGAN",
    "segnet": "audiostyle.methods.segnet:SegNet",
    "unet": "audiostyle.methods.segnet:UNet",
    "spec_gan": "audiostyle.methods.spec_gan:SpecGAN",
    "wave_vae": "audiostyle.methods.wave_vae:WaveVAE",
    "wave_vae_pool": "audiostyle.methods.wave_vae:WaveVAEPool",
}

BUILTIN: tuple[str, ...] = tuple(_REGISTRY)
"""The methods audiostyle ships, in registry order (:func:`register` may add more, e.g. a test's toy)."""


def register(name: str, target: str) -> None:
    """Register (or replace) a method: ``target`` is ``"package.module:ClassName"``."""
    _REGISTRY[name] = target


def names() -> list[str]:
    """Names of the registered methods whose modules are present."""
    return [n for n in _REGISTRY if importlib.util.find_spec(_REGISTRY[n].split(":")[0]) is not None]


def get(name: str) -> Method:
    """An instance of the method called ``name``; unknown names raise :class:`AudiostyleError`."""
    if name not in _REGISTRY:
        raise AudiostyleError(f"unknown method {name!r}: choose one of {', '.join(names())}.")
    module_name, class_name = _REGISTRY[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise AudiostyleError(f"method {name!r} is registered but not installed ({module_name} missing).") from exc
        raise
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Method)) or cls.name != name:
        raise AudiostyleError(
            f"method {name!r} is registered as {_REGISTRY[name]!r}, which is not a Method subclass named {name!r} "
            f"(found {getattr(cls, 'name', cls)!r}); fix the register() call."
        )
    return cls()


__all__ = ["BUILTIN", "Method", "TrialContext", "get", "names", "register"]
