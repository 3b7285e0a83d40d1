"""``--help`` that reads: each flag's default stated once, and a method's config keys and search space.

:class:`HelpFormatter` appends ``(default: X)`` only where the help text does not already say its default and
there is a default to state (not ``None``, not a flag's ``False``); descriptions and epilogs keep their line breaks.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from audiostyle.methods.space import Choice, Float, Given, Space


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each default once: the help's own ``default …`` words, else ``(default: X)``, else nothing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        nothing = action.default is None or action.default is False or action.default == [] \
            or action.default == argparse.SUPPRESS
        if "default" in text or nothing or action.required:
            return text
        return f"{text} (default: %(default)s)"


def dimension_text(dim: Any) -> str:
    """``real 0.0001 … 100 (log scale)``, ``integer 5 … 30``, ``one of stft | mel | mfcc``; a conditional field
    ``by conv: 1d → integer 5 … 30; 2d → integer 3 … 11``."""
    if isinstance(dim, Given):
        return f"by {dim.on}: " + "; ".join(f"{key} → {dimension_text(case)}" for key, case in dim.cases)
    if isinstance(dim, Choice):
        return "one of " + " | ".join(map(str, dim.options))
    kind = "real" if isinstance(dim, Float) else "integer"
    return f"{kind} {dim.low:g} … {dim.high:g}" + (" (log scale)" if dim.log else "")


def config_epilog(method: Any, space: Space) -> str:
    """The help's closing text: every config key of ``method`` with its default, then the searched ones."""
    keys = [f"  {f.name} = {getattr(method.Config(), f.name)!r}" for f in dataclasses.fields(method.Config)]
    searched = [f"  {name}: {dimension_text(dim)}" for name, dim in space.items()]
    presets = [f"  {name}: " + ", ".join(f"{k}={v!r}" for k, v in values.items())
               for name, values in method.presets().items()]
    return "\n".join([f"config keys of {method.name} (--set KEY=VALUE, --config FILE) and their defaults:", *keys,
                      "", "searched unless fixed by --set/--config (the sweep's space):", *searched,
                      *(["", "presets (--preset NAME):", *presets] if presets else [])])
