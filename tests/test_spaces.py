"""Every method's default search space offers only choices that can work: each option of each Choice dimension,
with every continuous dimension at its riskiest end (the high one: largest learning rates and loss weights),
trains one step to finite losses and metrics on the demo set, at the size of the method's smoke sweep."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import pytest

from audiostyle import methods
from audiostyle.data.synth import demo_dataset
from audiostyle.methods.base import TrialContext
from audiostyle.metrics import COMMON_METRICS
from audiostyle.methods.space import Choice, Float, Given, contains, resolve

pytestmark = pytest.mark.slow


def smoke_overrides(method: str) -> dict[str, Any]:
    """The method's smoke config (:meth:`~audiostyle.methods.base.Method.smoke_overrides`), for one step with its
    report; a value the smoke config sets outside the default space (a smaller network) is replaced by the space's
    smallest."""
    fixed = {**methods.get(method).smoke_overrides(), "steps": 1, "report_every": 1}
    for name, dim in methods.get(method).default_space().items():
        dim = resolve(dim, fixed) if isinstance(dim, Given) and dim.on in fixed else dim
        if name in fixed and not contains(dim, fixed[name]):
            fixed[name] = dim.options[0] if isinstance(dim, Choice) else dim.low
    if "checkpoint_every" in methods.get(method).make_config().__dataclass_fields__:
        fixed["checkpoint_every"] = 1
    return fixed


@lru_cache(maxsize=None)
def prepared(method: str) -> Any:
    """The method's data prepared once with its smoke config (searched fields never change the prepared data)."""
    m = methods.get(method)
    return m.prepare(demo_dataset(), m.make_config(smoke_overrides(method)))


def cases() -> list[tuple[str, str, Any]]:
    """(method, field, option) for each option of each Choice; a conditional Choice's options with its case named
    (``{"conv": "2d", "filters": 1024}`` as the option of field ``filters``)."""
    out = []
    for method in methods.BUILTIN:  # not the toy the sweep tests register
        for name, dim in methods.get(method).default_space().items():
            if isinstance(dim, Choice):
                out += [(method, name, option) for option in dim.options]
            elif isinstance(dim, Given):
                out += [(method, name, {dim.on: key, name: option}) for key, case in dim.cases
                        if isinstance(case, Choice) for option in case.options]
    return out


@pytest.mark.parametrize(("method", "field", "option"), cases(), ids=lambda v: str(v))
def test_each_choice_of_the_default_space_trains_one_step_finitely(method: str, field: str, option: Any) -> None:
    m = methods.get(method)
    high = {name: dim.high for name, dim in m.default_space().items() if isinstance(dim, Float)}
    chosen = option if isinstance(option, dict) else {field: option}
    config = m.make_config({**smoke_overrides(method), **high, **chosen})
    ctx = TrialContext()
    final = m.train(config, prepared(method), ctx)
    losses = [v for row in ctx.history for k, v in row.items() if k not in COMMON_METRICS]  # step, losses, extras
    assert len(losses) > 1 and all(math.isfinite(v) for v in losses), ctx.history
    assert math.isfinite(final[m.headline.metric]), final


def test_the_registry_refuses_a_target_that_is_not_the_method_it_names() -> None:
    from audiostyle import methods
    from audiostyle.errors import AudiostyleError

    methods.register("misnamed", "audiostyle.methods.segnet:UNet")  # a Method, but named "unet"
    methods.register("not_a_method", "audiostyle.methods.trained:Amp")
    try:
        for name, found in (("misnamed", "'unet'"), ("not_a_method", "<class")):
            with pytest.raises(AudiostyleError, match=f"not a Method subclass named '{name}' \\(found {found}"):
                methods.get(name)
    finally:
        methods._REGISTRY.pop("misnamed"), methods._REGISTRY.pop("not_a_method")
    assert all(methods.get(n).name == n for n in methods.names())
