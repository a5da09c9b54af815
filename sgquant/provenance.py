"""Where a result was made: the machine note every record carries, and what a results
folder's records say about the machines that made them (the reproducibility page).

Each FP32 record (its summary) and each fine-tune record (:class:`~sgquant.measure.
Measurement`) holds ``made_on`` (:func:`made_on`): the CPU capability torch dispatched
its kernels to (:func:`torch.backends.cpu.get_cpu_capability`, which honours
``$ATEN_CPU_CAPABILITY``: ``DEFAULT``, ``AVX2``, ``AVX512`` ...), the device, and torch's
version. None of these is part of a cache key: records are reused across machines (a CPU
run repeats bit for bit on one machine; another capability, device or torch may round
sums differently), so the book says instead which machines made the numbers it shows
(:func:`record_machines`; chapter 2 and the build information on the reproducibility
page). A record written before these notes counts as ``unknown``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import torch

from .cache import parse_json, results_root

__all__ = ["MADE_ON_FIELDS", "UNKNOWN", "made_on", "check_made_on", "record_machines"]

#: the fields of a record's ``made_on`` note
MADE_ON_FIELDS = ("cpu_capability", "device", "torch")
#: what a record without the note (or without one of its fields) says
UNKNOWN = "unknown"
#: the record kinds :func:`record_machines` counts, and its column for each
_KINDS = {"fp32": "fp32_models", "measure": "fine_tunes"}


def made_on(device: "torch.device | str" = "cpu") -> dict[str, str]:
    """This process's note for a record made on ``device``: CPU capability, device
    (``cpu``, or ``cuda (<GPU name>)``) and torch version."""
    dev = torch.device(device)
    name = dev.type
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        name = f"cuda ({torch.cuda.get_device_name(index)})"
    return {"cpu_capability": str(torch.backends.cpu.get_cpu_capability()), "device": name,
            "torch": str(torch.__version__)}


def check_made_on(value: Any) -> dict[str, str]:
    """A record's ``made_on`` note, checked (a dict of strings); a missing one is
    :data:`UNKNOWN` in every field."""
    if value is None:
        return dict.fromkeys(MADE_ON_FIELDS, UNKNOWN)
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"made_on must be a dict of strings ({', '.join(MADE_ON_FIELDS)}), "
                         f"got {value!r}")
    return {k: str(value.get(k, UNKNOWN)) for k in MADE_ON_FIELDS}


def _note_of(path: Path) -> "dict[str, str] | None":
    """The ``made_on`` note of the record at ``path`` (:data:`UNKNOWN` fields where it has
    none), or ``None`` for a file that is not a record (it would be recomputed)."""
    try:
        record = parse_json(path.read_bytes(), str(path))
    except (OSError, ValueError):
        return None
    value = record.get("value") if isinstance(record, dict) else None
    if not isinstance(value, dict):
        return None
    note = value.get("made_on")
    return {k: str(note.get(k, UNKNOWN)) if isinstance(note, dict) else UNKNOWN
            for k in MADE_ON_FIELDS}


def record_machines(root: "str | os.PathLike | None" = None) -> pd.DataFrame:
    """The machines that made the records of the results folder ``root``
    (:func:`~sgquant.cache.results_root`): one row per distinct (``cpu_capability``,
    ``device``, ``torch``), with its ``fp32_models``, ``fine_tunes`` and ``records``
    (their sum), most records first. Every FP32 and fine-tune record counts, of any
    results version; one without the note counts as ``unknown``, a file that is not a
    record not at all."""
    folder = results_root(root)
    rows = []
    for kind, column in _KINDS.items():
        sub = folder / kind
        for path in sorted(sub.glob("*.json")) if sub.is_dir() else ():
            note = _note_of(path)
            if note is not None:
                rows.append({**note, "column": column})
    cols = [*MADE_ON_FIELDS, *_KINDS.values(), "records"]
    if not rows:
        return pd.DataFrame(columns=cols)
    counts = (pd.DataFrame(rows).groupby([*MADE_ON_FIELDS, "column"]).size()
              .unstack("column", fill_value=0).reindex(columns=list(_KINDS.values()),
                                                       fill_value=0))
    counts["records"] = counts.sum(axis=1)
    out = counts.reset_index().rename_axis(columns=None)
    return (out.sort_values(["records", *MADE_ON_FIELDS], ascending=[False, True, True, True])
            .reset_index(drop=True)[cols])
