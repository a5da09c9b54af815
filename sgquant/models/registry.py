"""The model registry: every model sgquant can train, quantize and run packed, each one
:class:`~sgquant.models.entry.ModelEntry` (class, label, default size, optimiser
settings) defined in its own file; :func:`get_model` looks one up, :func:`build_model`
builds one. An unknown name is a ``ValueError`` that names the known ones.

Adding a model (the architecture page, "adding a model"): write ``sgquant/models/<name>.py``
with its :class:`~sgquant.models.base.QuantGNN` subclass and its ``ENTRY``, and add the
file's name to :data:`MODEL_MODULES`.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any, Optional

from ..checks import check_choice, check_int
from .base import QuantGNN
from .entry import ModelEntry

__all__ = ["MODEL_MODULES", "REGISTRY", "MODELS", "PAPER_MODELS", "PAPER_ARCHITECTURES",
           "get_model", "build_model"]

#: One module of ``sgquant.models`` per model, in the order the book lists them.
MODEL_MODULES = ("gcn", "agnn", "gat", "sage", "gin")


def _load(modules: tuple[str, ...]) -> dict[str, ModelEntry]:
    """The ``ENTRY`` of each module, by name (a name twice, or a class whose ``name``
    differs from its entry's, is a programming error caught at import)."""
    out: dict[str, ModelEntry] = {}
    for module in modules:
        entry = import_module(f"{__package__}.{module}").ENTRY
        if entry.name in out or getattr(entry.cls, "name", None) != entry.name:
            raise ValueError(f"model entry {entry.name!r} of sgquant.models.{module}: the name "
                             f"is taken, or its class's name is {entry.cls.name!r}")
        out[entry.name] = entry
    return out


#: Every model, by name.
REGISTRY: dict[str, ModelEntry] = _load(MODEL_MODULES)
#: Every model's name (``--model`` choices; chapters' ``model`` parameter).
MODELS = tuple(REGISTRY)
#: The models the paper evaluates (what the profiles run).
PAPER_MODELS = tuple(n for n, e in REGISTRY.items() if e.in_paper)
#: Table I of the paper (hidden width, number of layers).
PAPER_ARCHITECTURES = {n: REGISTRY[n].architecture for n in PAPER_MODELS}


def get_model(name: Any) -> ModelEntry:
    """The entry of model ``name`` (case-insensitive); ``ValueError`` naming the known
    models otherwise."""
    key = str(name).lower() if isinstance(name, str) else name
    return REGISTRY[check_choice(key, "model", MODELS)]


def build_model(name: str, in_dim: int, num_classes: int, *, hidden: Optional[int] = None,
                num_layers: Optional[int] = None, dropout: Optional[float] = None,
                **options: int) -> QuantGNN:
    """Build model ``name`` with its default size (the paper's Table I for the paper's
    models) unless ``hidden``/``num_layers`` say otherwise; ``options`` are the model's
    further integer arguments (GAT: ``heads``, default the paper's 8); ``dropout``
    defaults to each model's own value."""
    entry = get_model(name)
    in_dim = check_int(in_dim, "in_dim", minimum=1)
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    hidden = check_int(entry.hidden if hidden is None else hidden, "hidden", minimum=1)
    num_layers = check_int(entry.num_layers if num_layers is None else num_layers,
                           "num_layers", minimum=1)
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        raise ValueError(f"model {entry.name!r} takes no {', '.join(unknown)}; its options: "
                         f"{', '.join(entry.options) or 'none'}")
    kwargs: dict[str, Any] = {k: check_int(options.get(k, v), k, minimum=1)
                              for k, v in entry.options.items()}
    if dropout is not None:
        kwargs["dropout"] = dropout
    return entry.cls(in_dim, num_classes, hidden, num_layers, **kwargs)
