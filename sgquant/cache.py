"""On-disk results cache: every measurement is written once, atomically.

A record's key is a plain dict (dataset, model, architecture, BitAssignment,
seed, budgets, code version ...); its file name is a hash of the key. Files are
written to a temporary name and renamed, so an interrupted run leaves either the
whole record or nothing, and a rerun resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch

#: Bumped when a change alters measured numbers, so old records are not reused.
RESULTS_VERSION = "1"


def results_root(root: "str | os.PathLike | None" = None) -> Path:
    """``root``, else ``$SGQUANT_RESULTS``, else ``./results``."""
    return Path(root or os.environ.get("SGQUANT_RESULTS") or "results")


def key_hash(key: dict) -> str:
    """Stable hash of a JSON-serialisable key."""
    text = json.dumps({**key, "results_version": RESULTS_VERSION}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_bytes(path, json.dumps(payload, indent=1, sort_keys=True,
                                        default=str).encode())


class ResultCache:
    """JSON records (and torch state dicts) under ``root/<kind>/<hash>``."""

    def __init__(self, root: "str | os.PathLike | None" = None) -> None:
        self.root = results_root(root)

    def path(self, kind: str, key: dict, suffix: str = ".json") -> Path:
        return self.root / kind / f"{key_hash(key)}{suffix}"

    def get(self, kind: str, key: dict) -> Optional[dict]:
        path = self.path(kind, key)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # unreadable: measured again and overwritten
        return record.get("value")

    def put(self, kind: str, key: dict, value: dict) -> None:
        atomic_write_json(self.path(kind, key), {"key": key, "value": value})

    def get_state(self, kind: str, key: dict) -> Optional[dict]:
        path = self.path(kind, key, ".pt")
        if not path.exists():
            return None
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # a corrupt file is retrained and overwritten
            return None

    def put_state(self, kind: str, key: dict, state: dict) -> None:
        import io
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.path(kind, key, ".pt"), buffer.getvalue())
