"""The fingerprint of every result-changing default: a hash that moves whenever one of
them does, so that no default changes the numbers without the results version
(:data:`~sgquant.cache.RESULTS_VERSION`) moving with it (the architecture page,
"protocol").

:func:`result_defaults` gathers them, by section: the model registry (each entry's size,
optimiser settings, options and its class's constructor defaults such as dropout),
training (the defaults of :func:`~sgquant.train.train_model` and
:func:`~sgquant.train.finetune`, :class:`~sgquant.train.Finetune`,
:class:`~sgquant.train.Distillation`), the quantizer (:class:`~sgquant.quantize.
QuantOptions`), the profiles' budgets, the learning-rate schedules and their presets, the
variants (:meth:`~sgquant.variants.Variant.to_dict`, confirmation included) and the
search's defaults (:class:`~sgquant.search.SearchSpec`, the strategies). :func:`fingerprint`
is the first 16 hex digits of the SHA-256 of their canonical JSON. ``tests/
test_results_version.py`` compares it with :data:`~sgquant.cache.RESULTS_FINGERPRINT`;
when it differs, bump the results version and record the new fingerprint, which

    python -m sgquant.fingerprint

prints (the line to paste into ``sgquant/cache.py``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from typing import Any, Callable, Mapping, Optional

__all__ = ["result_defaults", "fingerprint", "fingerprint_line"]


def _plain(value: Any) -> Any:
    """``value`` as plain JSON: a class by its dotted name, a mapping as a dict, a
    dataclass by its ``to_dict`` (else its fields), anything else by ``repr``."""
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Mapping):
        return dict(value)
    if dataclasses.is_dataclass(value):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return repr(value)


def _field_defaults(cls: type) -> dict[str, Any]:
    """A dataclass's field defaults (a factory's product for ``default_factory``); a field
    whose default is ``None`` (the value comes from elsewhere, a profile or a variant that
    is fingerprinted itself, or the setting is off) is left out, so a new optional
    setting does not move the fingerprint, and giving it a default value does."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is None:
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _signature_defaults(func: Callable) -> dict[str, Any]:
    """A function's keyword defaults."""
    return {p.name: p.default for p in inspect.signature(func).parameters.values()
            if p.default is not inspect.Parameter.empty}


def _without_label(value: Any) -> dict[str, Any]:
    """A dataclass's fields (or a dict) but its ``label``, which changes no number."""
    out = dict(value) if isinstance(value, Mapping) else {
        f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    out.pop("label", None)
    return out


def result_defaults() -> dict[str, Any]:
    """Every default that changes a result, by section (see the module docstring)."""
    from . import train
    from .fidelity import DEFAULT_FIDELITY, FIDELITIES
    from .models import REGISTRY
    from .profiles import PROFILES
    from .quantize import QuantOptions
    from .schedule import SCHEDULES, Schedule
    from .search.spec import SearchSpec
    from .search.strategy import PAPER_STRATEGY, STRATEGY
    from .variants import ABLATION, TRIALS, Confirmation

    return {
        "models": {name: {**_without_label(e), "training": e.training,
                          "constructor": _signature_defaults(e.cls.__init__)}
                   for name, e in REGISTRY.items()},
        "training": {"train_model": _signature_defaults(train.train_model),
                     "finetune": _signature_defaults(train.finetune),
                     "Finetune": _field_defaults(train.Finetune),
                     "Distillation": _field_defaults(train.Distillation)},
        "quantizer": _field_defaults(QuantOptions),
        "profiles": {name: p.to_dict() for name, p in PROFILES.items()},
        "schedules": {"Schedule": _field_defaults(Schedule),
                      "presets": {name: s.to_dict() for name, s in SCHEDULES.items()}},
        "variants": {"variants": {v.name: _without_label(v.to_dict())
                                  for v in (*ABLATION, *TRIALS)},
                     "Confirmation": _field_defaults(Confirmation)},
        "search": {"SearchSpec": _field_defaults(SearchSpec), "strategy": dict(STRATEGY),
                   "paper_strategy": dict(PAPER_STRATEGY),
                   "fidelities": {n: f.to_dict() for n, f in FIDELITIES.items()},
                   "default_fidelity": DEFAULT_FIDELITY},
    }


def fingerprint(defaults: Optional[Mapping[str, Any]] = None) -> str:
    """The first 16 hex digits of the SHA-256 of ``defaults`` (default:
    :func:`result_defaults`) as canonical JSON (keys sorted)."""
    text = json.dumps(result_defaults() if defaults is None else defaults, sort_keys=True,
                      default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint_line() -> str:
    """The line of ``sgquant/cache.py`` recording today's fingerprint under today's
    results version (what ``python -m sgquant.fingerprint`` prints)."""
    from .cache import RESULTS_FINGERPRINT, RESULTS_VERSION

    recorded = {**RESULTS_FINGERPRINT, RESULTS_VERSION: fingerprint()}
    return f"RESULTS_FINGERPRINT = {json.dumps(recorded)}"


if __name__ == "__main__":
    print(fingerprint_line())
