"""SGQuant+ frozen: the method's settings as data, under a version.

A method evaluated held out must not change after it was frozen. :func:`method_settings`
is everything that makes SGQuant+ what it is (its quantizer, fine-tune, final fine-tune
length and confirmation, :class:`~sgquant.variants.Variant`; the search's fidelity,
:mod:`sgquant.fidelity`, and candidate strategy, :mod:`sgquant.search.strategy`), and
``sgquant/frozen/<name>-<version>.json`` holds it as it was frozen. :func:`check_frozen`
refuses a method whose settings differ from its frozen file: a change to SGQuant+ is a new
version with a new file, never an edit of a frozen one. The book prints the frozen
settings (:func:`settings_table`) beside the held-out evaluation (chapter 3).
"""
from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pandas as pd

__all__ = ["FROZEN", "frozen_file_name", "method_settings", "frozen_settings", "check_frozen", "settings_table",
           "design_table", "design_list"]

#: The frozen methods and their versions (the newest last).
FROZEN: dict[str, tuple[str, ...]] = {"sgquant+": ("2026.12",)}


def method_settings(name: str = "sgquant+") -> dict[str, Any]:
    """The current settings of the method ``name``: its variant (without its label and
    note, which change no number), the default search fidelity and the cost model's
    candidate strategy."""
    from ..fidelity import get_fidelity
    from ..search.strategy import STRATEGY
    from ..variants import get_variant

    variant = get_variant(name).to_dict()
    variant.pop("label", None)
    return json.loads(json.dumps({"variant": variant, "fidelity": get_fidelity(None).to_dict(),
                                  "strategy": dict(STRATEGY)}, default=str))


def frozen_file_name(name: str, version: str) -> str:
    """The file a frozen version is stored in: ``<name>-<version>.json``."""
    return f"{name}-{version}.json"


def frozen_settings(name: str = "sgquant+", version: "str | None" = None) -> dict[str, Any]:
    """The settings of ``name`` as frozen under ``version`` (default: its newest)."""
    if name not in FROZEN:
        raise ValueError(f"no frozen version of method {name!r}; frozen: {', '.join(FROZEN)}")
    version = FROZEN[name][-1] if version is None else version
    if version not in FROZEN[name]:
        raise ValueError(f"method {name!r} has no frozen version {version!r}; "
                         f"versions: {', '.join(FROZEN[name])}")
    text = resources.files(__name__).joinpath(frozen_file_name(name, version)).read_text()
    return json.loads(text)["settings"]


def check_frozen(name: str = "sgquant+") -> str:
    """The newest frozen version of ``name`` when its current settings are those it was
    frozen with; otherwise a ``ValueError`` naming the settings that moved."""
    version = FROZEN[name][-1]
    now, then = _flat(method_settings(name)), _flat(frozen_settings(name, version))
    moved = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
    if moved:
        raise ValueError(f"method {name} differs from its frozen version {version} in "
                         f"{', '.join(moved)}: freeze a new version "
                         f"(python -m sgquant.frozen {name} <version>) instead of changing it")
    return version


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def settings_table(name: str = "sgquant+", version: "str | None" = None) -> pd.DataFrame:
    """The frozen settings of ``name`` as a two-column table (setting, value)."""
    flat = _flat(frozen_settings(name, version))
    return pd.DataFrame({"setting": list(flat), "value": [json.dumps(v) if not isinstance(
        v, str) else v for v in flat.values()]})


def design_table() -> pd.DataFrame:
    """How SGQuant+ was designed: each choice, its setting, what it was chosen on
    (``validation``, ``test``, ``label-free`` or ``not recorded``), the evidence, and the
    alternative that stays runnable (``sgquant/frozen/design.csv``)."""
    with resources.files(__name__).joinpath("design.csv").open() as f:
        return pd.read_csv(f)


def design_list() -> str:
    """:func:`design_table` as a Markdown list (prose wraps; a table of it would not fit
    the book's column): per choice, its setting, what it was chosen on, the evidence and
    the alternative."""
    return "\n".join(f"* **{r.choice}** (chosen on *{r.chosen_on}*): {r.setting}. {r.evidence}. "
                     f"Runnable alternative: {r.alternative}." for r in design_table().itertuples())
