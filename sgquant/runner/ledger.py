"""What a run spent, in epochs: the append-only ledger of every job a
:class:`~sgquant.runner.Runner` was asked for (the architecture page, "How a chapter
reaches its numbers").

For each job a run asks for (read from the cache or measured), the runner appends one
JSON line to ``RESULTS/ledger/<profile>.jsonl`` (:func:`ledger_path`): the profile, the
job's ``purpose`` (:data:`PURPOSES`, or a chapter's own measurements), dataset, model,
cache kind and key hash, who asked (``asked_by``: the chapter or search), whether it
was cached, and from the record the epochs it ran and their CPU seconds
(:func:`record_cost`). Each line is one ``write`` of the whole line to a file opened
with ``O_APPEND``; a broken last line (an interrupted write) is skipped when read. A
ledger that cannot be written (a read-only shared results folder) is warned about once
and the run goes on: the records it reads are still served.

The cost of a profile (:func:`cost_table`) counts each record once (its kind and key
hash; a record asked for twice is paid once), summed by purpose:

.. math:: \\text{epochs} = \\sum_{\\text{unique records}} e_r, \\qquad
          \\text{CPU-minutes} = \\sum_{\\text{unique records}} s_r / 60,

with :math:`e_r` the epochs a record ran (its ``epochs_run``; a fine-tune recorded before
fine-tunes could stop early: the ``finetune_epochs`` of its key) and :math:`s_r` its
``seconds`` (wall time of single-threaded work, so CPU seconds). Record formats and cache
keys are unchanged: the counts are derived.

:func:`accounting` names who asks (a context); every runner inside adds its entries to
that :class:`Account` too, so a chapter sees what its searches spent.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional

import pandas as pd

from ..cache import key_hash

__all__ = ["PURPOSES", "Account", "accounting", "current_account", "ledger_path",
           "append_entry", "read_ledger", "record_cost", "make_entry", "note_record", "unique_entries",
           "cost_table", "cost_by_purpose", "cost_sentence"]

#: the purposes of a search's and a chapter's jobs, in the order tables show them
PURPOSES = ("fp32", "candidate", "confirmation", "final")

#: ledgers found unwritable in this process (warned about once)
_UNWRITABLE: set[Path] = set()

_ACCOUNT: contextvars.ContextVar[Optional["Account"]] = contextvars.ContextVar(
    "sgquant_account", default=None)


@dataclass
class Account:
    """Who asks (``asked_by``, e.g. ``overall`` or ``overall/search random ...``) and the
    ledger entries of every job asked for under it (nested accounts included)."""

    asked_by: str
    entries: list[dict] = field(default_factory=list)
    parent: Optional["Account"] = None

    @property
    def purpose(self) -> str:
        """The default purpose of its jobs: the outermost asker (a chapter's name)."""
        return self.asked_by.split("/")[0] or "other"

    def add(self, entry: dict) -> None:
        """Record ``entry`` here and in every enclosing account."""
        acct: Optional[Account] = self
        while acct is not None:
            acct.entries.append(entry)
            acct = acct.parent


def current_account() -> Optional[Account]:
    """The innermost :func:`accounting` context, if any."""
    return _ACCOUNT.get()


@contextlib.contextmanager
def accounting(asked_by: str) -> Iterator[Account]:
    """An :class:`Account` named ``asked_by`` (below the enclosing one, if any) for the
    block: runners made inside add their entries to it."""
    parent = _ACCOUNT.get()
    name = f"{parent.asked_by}/{asked_by}" if parent is not None else asked_by
    acct = Account(name, parent=parent)
    token = _ACCOUNT.set(acct)
    try:
        yield acct
    finally:
        _ACCOUNT.reset(token)


def ledger_path(root: "str | os.PathLike", profile: str) -> Path:
    """``root/ledger/<profile>.jsonl``."""
    return Path(root) / "ledger" / f"{profile}.jsonl"


def append_entry(path: Path, entry: Mapping[str, Any]) -> None:
    """Append ``entry`` as one line: one ``write`` to a file opened with ``O_APPEND``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(dict(entry), sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_ledger(path: "str | os.PathLike") -> list[dict]:
    """The entries of a ledger file (none if it is missing); lines that are not a JSON
    object (a write cut short) are skipped."""
    p = Path(path)
    if not p.is_file():
        return []
    out = []
    for line in p.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "key" in entry:
            out.append(entry)
    return out


def record_cost(kind: str, key: Mapping[str, Any], record: Mapping[str, Any]
                ) -> tuple[int, float]:
    """(epochs, CPU seconds) of a record of ``kind`` under ``key``: an FP32 model's
    ``epochs_run``, a fine-tune's ``epochs_run`` (one stopped early ran fewer; a record
    from before it was kept: its key's ``finetune_epochs``), 0 epochs for other kinds;
    seconds: the record's ``seconds`` (0 when it has none)."""
    if kind == "fp32":
        epochs = int(record.get("epochs_run", 0))
    elif kind == "measure":
        ran = record.get("epochs_run")
        epochs = int(key.get("finetune_epochs", 0) if ran is None else ran)
    else:
        epochs = 0
    return epochs, float(record.get("seconds", 0.0) or 0.0)


def make_entry(*, profile: str, purpose: str, dataset: str, model: str, kind: str,
               key: Mapping[str, Any], record: Mapping[str, Any], asked_by: str,
               cached: bool) -> dict:
    """One ledger line (see the module docstring)."""
    epochs, seconds = record_cost(kind, key, record)
    return {"profile": profile, "purpose": purpose, "dataset": dataset, "model": model,
            "kind": kind, "key": key_hash(dict(key)), "asked_by": asked_by,
            "cached": bool(cached), "epochs": epochs, "seconds": seconds,
            "time": round(time.time(), 3)}


def note_record(root: "str | os.PathLike", *, kind: str, key: Mapping[str, Any],
                record: Mapping[str, Any], purpose: str, dataset: str, model: str,
                profile: str, cached: bool, asked_by: str = "") -> dict:
    """Append the ledger line of a record to ``root``'s ledger of ``profile`` and to the
    current :class:`Account` (``purpose`` empty: ``fp32`` for an FP32 model, else the
    account's); ``asked_by`` follows the account's name. Returns the entry."""
    acct = current_account()
    if not purpose:
        purpose = "fp32" if kind == "fp32" else (acct.purpose if acct else "other")
    names = [acct.asked_by if acct else "", asked_by]
    entry = make_entry(profile=profile, purpose=purpose, dataset=dataset, model=model,
                       kind=kind, key=key, record=record,
                       asked_by="/".join(n for n in names if n) or "run", cached=cached)
    path = ledger_path(root, profile)
    try:
        append_entry(path, entry)
    except OSError as exc:  # a read-only (shared) results folder still serves its records
        if path not in _UNWRITABLE:
            _UNWRITABLE.add(path)
            warnings.warn(f"cannot append to the ledger {path} ({exc.strerror or exc}): "
                          "this run's epochs are not counted there", stacklevel=2)
    if acct is not None:
        acct.add(entry)
    return entry


def unique_entries(entries: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per record (kind, key): its first entry (a record is paid once, under
    the purpose it was first asked for)."""
    cols = ["profile", "purpose", "dataset", "model", "kind", "key", "asked_by", "cached",
            "epochs", "seconds"]
    df = pd.DataFrame(list(entries))
    if not len(df):
        return pd.DataFrame(columns=cols)
    df = df.reindex(columns=cols)
    return df.drop_duplicates(subset=["kind", "key"], keep="first").reset_index(drop=True)


def _order(purposes: Iterable[str]) -> list[str]:
    seen = list(dict.fromkeys(purposes))
    return [p for p in PURPOSES if p in seen] + sorted(p for p in seen if p not in PURPOSES)


def cost_table(entries: Iterable[Mapping[str, Any]], by: tuple[str, ...] = ("purpose",)
               ) -> pd.DataFrame:
    """Epochs, CPU-minutes and jobs (unique records) of ``entries`` by ``by`` columns
    (purposes in :data:`PURPOSES` order, then the others by name)."""
    df = unique_entries(entries)
    cols = [*by, "epochs", "cpu_minutes", "jobs"]
    if not len(df):
        return pd.DataFrame(columns=cols)
    out = (df.assign(cpu_minutes=df["seconds"].astype(float) / 60.0, jobs=1)
           .groupby(list(by), sort=False)[["epochs", "cpu_minutes", "jobs"]].sum()
           .reset_index())
    out["epochs"] = out["epochs"].astype(int)
    rank = {p: i for i, p in enumerate(_order(out["purpose"]))} if "purpose" in by else {}
    if rank:
        out = out.assign(_r=out["purpose"].map(rank)).sort_values(
            [c if c != "purpose" else "_r" for c in by], kind="stable").drop(columns="_r")
    return out.reset_index(drop=True)[cols]


def cost_by_purpose(entries: Iterable[Mapping[str, Any]]) -> dict[str, dict]:
    """``{purpose: {"epochs", "seconds", "jobs"}}`` of ``entries`` (unique records)."""
    t = cost_table(entries)
    return {str(r.purpose): {"epochs": int(r.epochs), "seconds": float(r.cpu_minutes) * 60.0,
                             "jobs": int(r.jobs)} for r in t.itertuples()}


def cost_sentence(cost: Mapping[str, Mapping[str, Any]], seconds: bool = True) -> str:
    """``fp32 400 epochs (2 jobs, 0.5 CPU-min); candidate ...`` of :func:`cost_by_purpose`
    (without CPU time when ``seconds`` is false: a sentence that stays the same run to
    run)."""
    parts = []
    for purpose in _order(cost):
        c = cost[purpose]
        extra = f", {c['seconds'] / 60.0:.1f} CPU-min" if seconds else ""
        parts.append(f"{purpose} {int(c['epochs'])} epochs ({int(c['jobs'])} jobs{extra})")
    return "; ".join(parts) if parts else "nothing"
