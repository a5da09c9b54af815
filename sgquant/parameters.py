"""A chapter notebook's parameters: what its ``parameters`` cell declares, values
given on the command line, and the checks they pass before any cell runs.

    sgquant run notebooks/05_autobit.ipynb -p profile quick -p seeds "[0, 1]"

:func:`notebook_parameters` reads the declared names and defaults
(:func:`papermill.inspect_notebook`); :func:`parse_value` turns ``-p NAME VALUE``
text into a Python value; :func:`validate_parameters` refuses, in one line naming
the parameter, an unknown name, a value of the wrong type
(:func:`check_parameter_types`, against :data:`PARAMETER_TYPES`) and a bad value
(:func:`sgquant.chapters.common.check_parameters`).
"""
from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import Any, Callable

from .checks import shorten

__all__ = ["PARAMETER_TYPES", "notebook_parameters", "parse_value", "check_parameter_types",
           "validate_parameters"]

#: The types each chapter parameter takes, any of: ``None``, ``str`` (not empty),
#: ``int``, ``number`` (an int or a float), ``bool``, ``dict``, ``list[str]`` and
#: ``list[int]`` (lists or tuples, not empty). A notebook parameter not listed here
#: takes the type papermill reads from its annotation, else its default's type.
PARAMETER_TYPES: dict[str, tuple[str, ...]] = {
    "dataset": ("str", "list[str]"), "model": ("str", "list[str]"), "profile": ("str",),
    "seeds": ("None", "int", "list[int]"), "tolerance": ("number",),
    "search_seed": ("int",), "search_seeds": ("None", "int"), "variants": ("list[str]",),
    "workers": ("None", "int"), "device": ("None", "str"), "scheduler": ("None", "str"),
    "budget": ("None", "int"), "samples": ("None", "int"), "bits": ("list[int]",),
    "chunk_sizes": ("list[int]",), "peak_bits": ("int",), "ablation": ("bool",),
    "assignment": ("None", "dict", "str"), "plan": ("str",), "held_out": ("bool",),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _items(value: Any, check: Callable[[Any], bool]) -> bool:
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(map(check, value))


def _is_str(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


#: Each type name of :data:`PARAMETER_TYPES`: whether a value has it, and its words.
_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "None": (lambda v: v is None, "None"),
    "str": (_is_str, "a non-empty string"),
    "int": (_is_int, "an integer"),
    "number": (lambda v: _is_int(v) or isinstance(v, float), "a number"),
    "bool": (lambda v: isinstance(v, bool), "True or False"),
    "dict": (lambda v: isinstance(v, dict), "a dict"),
    "list[str]": (lambda v: _items(v, _is_str), "a non-empty list of strings"),
    "list[int]": (lambda v: _items(v, _is_int), "a non-empty list of integers"),
}
#: Python types of defaults or annotations, as type names of :data:`_TYPES`.
_OF_PYTHON = {"str": "str", "int": "int", "float": "number", "bool": "bool", "dict": "dict"}


def _inspect(path: "str | os.PathLike") -> dict[str, dict]:
    import papermill

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"notebook {str(path)!r} does not exist")
    info = papermill.inspect_notebook(str(path))
    if not info:
        raise ValueError(f"{path} has no cell tagged 'parameters'")
    return info


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def notebook_parameters(path: "str | os.PathLike") -> dict[str, Any]:
    """The parameters declared in a notebook's ``parameters`` cell, with defaults
    (:func:`papermill.inspect_notebook`)."""
    return {name: _literal(spec["default"]) for name, spec in _inspect(path).items()}


def _declared_types(spec: dict) -> tuple[str, ...]:
    """A parameter's types: :data:`PARAMETER_TYPES`, else its annotation's, else its
    default's (none known: any value)."""
    if spec["name"] in PARAMETER_TYPES:
        return PARAMETER_TYPES[spec["name"]]
    for name in (spec.get("inferred_type_name"), type(_literal(spec["default"])).__name__):
        if name in _OF_PYTHON:
            return (_OF_PYTHON[name],)
    return ()


def check_parameter_types(path: "str | os.PathLike", parameters: dict[str, Any]) -> None:
    """Refuse (``ValueError``: the parameter, the value and the types it takes) a
    value whose type the notebook's parameter does not take (:data:`PARAMETER_TYPES`)."""
    _check_types(_inspect(path), Path(path).name, parameters)


def _check_types(info: dict[str, dict], notebook: str, parameters: dict[str, Any]) -> None:
    for name, value in parameters.items():
        types = _declared_types(info[name]) if name in info else ()
        if types and not any(_TYPES[t][0](value) for t in types):
            raise ValueError(
                f"parameter {name} of {notebook} must be "
                f"{' or '.join(_TYPES[t][1] for t in types)}, got {shorten(repr(value))} "
                f"({type(value).__name__}); its default is {info[name]['default']}")


def parse_value(text: str, name: str = "value") -> Any:
    """A command-line value of parameter ``name``: a Python literal (``3``, ``0.5``,
    ``None``, ``[1, 2]``), ``true``/``false``/``null``, or else the string itself.
    Text that opens a list, tuple or dict but is not a valid one, or is nested too
    deeply to parse, raises ``ValueError`` naming the parameter."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none"):
        return None
    try:
        return ast.literal_eval(text)
    except (RecursionError, MemoryError):
        raise ValueError(f"parameter {name}: {shorten(text)!r} is nested too deeply to "
                         "parse; give a number, a string or a flat list") from None
    except (ValueError, SyntaxError, TypeError):
        if text.lstrip()[:1] in ("[", "(", "{"):
            raise ValueError(f"parameter {name}: {shorten(text)!r} is not a valid Python "
                             "literal (a list looks like [1, 2, 4]; quote a string that "
                             "starts with a bracket)") from None
        return text


def _single_dataset(path: Path) -> bool:
    """Whether a chapter trains on one dataset (so its files must be present);
    multi-dataset chapters list a missing dataset as "not run" instead."""
    meta = json.loads(path.read_text()).get("metadata", {}).get("sgquant", {})
    return bool(meta.get("single_dataset"))


def validate_parameters(path: "str | os.PathLike", parameters: dict[str, Any]) -> dict[str, Any]:
    """Check ``parameters`` against the notebook's ``parameters`` cell (names, then
    types: :func:`check_parameter_types`) and their values
    (:func:`sgquant.chapters.common.check_parameters`); a single-dataset chapter also
    needs one dataset and one model, and the dataset's data
    (:class:`~sgquant.data.DatasetUnavailableError` otherwise). Raises
    ``ValueError`` naming the bad one; returns the parameters with defaults."""
    from .chapters.common import check_parameters, require_dataset

    path = Path(path)
    info = _inspect(path)
    declared = {name: _literal(spec["default"]) for name, spec in info.items()}
    unknown = [k for k in parameters if k not in declared]
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))} for {path.name}; "
                         f"its parameters are {', '.join(declared)}")
    _check_types(info, path.name, parameters)
    merged = {**declared, **parameters}
    checked = check_parameters(**merged)
    if _single_dataset(path) and "dataset" in merged:
        if len(checked["datasets"]) != 1:
            raise ValueError(f"{path.name} takes one dataset, got {merged['dataset']!r}")
        if "model" in merged and len(checked["models"]) != 1:
            from .models import MODELS

            raise ValueError(f"{path.name} takes one model ({', '.join(MODELS)}), "
                             f"got {merged['model']!r}")
        require_dataset(checked["datasets"][0])  # downloads on a networked machine
    return merged
