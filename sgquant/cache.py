"""On-disk results cache: every measurement is written once, atomically.

A record's key is a plain dict (dataset, model, architecture, BitAssignment,
seed, budgets, code version ...); its file name is a hash of the key. Files are
written to a temporary name and renamed, so an interrupted run leaves either the
whole record or nothing, and a rerun resumes where it stopped. Files get the
permissions the umask allows (a folder shared by a group stays readable).

Reading checks what was written: a file that is not valid JSON (or nested too
deep to parse), belongs to another key, or fails the caller's ``validate`` check
is discarded with a one-line warning on the ``sgquant.cache`` logger, and the
caller measures it again and overwrites it (:meth:`ResultCache.get`).

:func:`check_results_folder` and :func:`check_output_file` check a folder or
output file before any work, so a run that cannot write its results says so at
once, in one line (a ``ValueError``).
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Optional

import torch

__all__ = ["RESULTS_VERSION", "results_root", "key_hash", "atomic_write_bytes",
           "atomic_write_json", "parse_json", "current_umask", "ResultCache",
           "check_results_folder", "check_output_file", "stale_records_notice"]

#: Bumped when a change alters measured numbers or the records' structure, so old
#: records are not reused (they stay on disk; see :func:`stale_records_notice`).
RESULTS_VERSION = "2"

#: the file in a results folder that says which :data:`RESULTS_VERSION` wrote it
VERSION_FILE = "results_version.json"

log = logging.getLogger("sgquant.cache")


def results_root(root: "str | os.PathLike | None" = None) -> Path:
    """``root``, else ``$SGQUANT_RESULTS``, else ``./results``."""
    return Path(root or os.environ.get("SGQUANT_RESULTS") or "results")


def key_hash(key: dict) -> str:
    """Stable hash of a JSON-serialisable key."""
    text = json.dumps({**key, "results_version": RESULTS_VERSION}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def parse_json(text: "str | bytes", what: str = "JSON") -> Any:
    """``json.loads(text)``; malformed or too deeply nested text is a ``ValueError``
    naming ``what``."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply to read") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} is not valid JSON ({exc})") from None


_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the system allows
    (``/proc/self/status``), else by setting and restoring it under a lock."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a temporary file and ``os.replace``; the file
    gets mode ``0o666`` less the umask, like any file the user creates."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
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


def _normalised(key: dict) -> Any:
    """``key`` as it reads back from JSON (tuples become lists ...)."""
    return json.loads(json.dumps(key, sort_keys=True, default=str))


class ResultCache:
    """JSON records (and torch state dicts) under ``root/<kind>/<hash>``."""

    def __init__(self, root: "str | os.PathLike | None" = None) -> None:
        self.root = results_root(root)

    def path(self, kind: str, key: dict, suffix: str = ".json") -> Path:
        return self.root / kind / f"{key_hash(key)}{suffix}"

    def _discard(self, path: Path, reason: str) -> None:
        log.warning("sgquant: discarding invalid cache record %s (%s); it is computed "
                    "again and rewritten", path, reason)

    def get(self, kind: str, key: dict,
            validate: Optional[Callable[[Any], Any]] = None) -> Optional[dict]:
        """The value stored for ``key``, or ``None`` (absent or invalid: recompute it).

        ``validate(value)`` raises ``ValueError`` for a value of the wrong structure.
        """
        path = self.path(kind, key)
        if not path.exists():
            return None
        try:
            record = parse_json(path.read_bytes(), "the file")
            if not isinstance(record, dict) or set(record) != {"key", "value"}:
                raise ValueError("not a {key, value} record")
            if record["key"] != _normalised(key):
                raise ValueError("it holds another key")
            if not isinstance(record["value"], dict):
                raise ValueError("its value is not a JSON object")
            if validate is not None:
                validate(record["value"])
        except (OSError, ValueError) as exc:
            self._discard(path, str(exc))
            return None
        return record["value"]

    def put(self, kind: str, key: dict, value: dict) -> None:
        atomic_write_json(self.path(kind, key), {"key": key, "value": value})
        self._mark_version()

    def get_state(self, kind: str, key: dict,
                  validate: Optional[Callable[[Any], Any]] = None) -> Optional[dict]:
        """The torch state stored for ``key``, or ``None`` (absent, unreadable, or
        rejected by ``validate``: retrain and overwrite it)."""
        path = self.path(kind, key, ".pt")
        if not path.exists():
            return None
        try:
            state = torch.load(path, weights_only=True)
            if validate is not None:
                validate(state)
        except Exception as exc:  # any unreadable or wrong file is recomputed
            first_line = (str(exc).strip().splitlines() or [""])[0]
            self._discard(path, f"{type(exc).__name__}: {first_line}")
            return None
        return state

    def put_state(self, kind: str, key: dict, state: dict) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.path(kind, key, ".pt"), buffer.getvalue())
        self._mark_version()

    def _mark_version(self) -> None:
        marker = self.root / VERSION_FILE
        if not marker.exists():
            atomic_write_json(marker, {"results_version": RESULTS_VERSION})


def stale_records_notice(root: "str | os.PathLike | None" = None) -> Optional[str]:
    """A one-line notice when ``root`` holds records of another :data:`RESULTS_VERSION`
    (they are not reused; nothing is deleted), else ``None``. The notice is given once:
    the folder is then marked with the current version."""
    folder = results_root(root)
    marker = folder / VERSION_FILE
    try:
        version = parse_json(marker.read_bytes()).get("results_version") \
            if marker.is_file() else None
    except (OSError, ValueError, AttributeError):
        version = None
    if version == RESULTS_VERSION:
        return None
    old = any(p.suffix in (".json", ".pt") for kind in ("measure", "fp32")
              if (folder / kind).is_dir() for p in (folder / kind).iterdir())
    if not old:
        return None
    try:
        atomic_write_json(marker, {"results_version": RESULTS_VERSION})
    except OSError:
        pass
    return (f"note: the records in {folder} were written by an older sgquant (results "
            f"version {version or '1'}, now {RESULTS_VERSION}): they are not reused, "
            "everything is measured again (nothing is deleted)")


def _probe_writable(folder: Path) -> Optional[str]:
    """``None`` if a file can be created in ``folder``, else why not."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".sgquant-probe-")
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    os.unlink(tmp)
    return None


def check_results_folder(root: "str | os.PathLike | None" = None,
                         option: str = "--results") -> Path:
    """The results folder (:func:`results_root`), created if missing, checked to be a
    writable folder before any work; else a one-line ``ValueError`` saying what to do."""
    folder = results_root(root)
    hint = f"give a writable folder with {option} (or $SGQUANT_RESULTS)"
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"results folder {folder} is a file, not a folder: {hint}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create the results folder {folder} "
                         f"({exc.strerror or exc}): {hint}") from None
    for kind in ("measure", "fp32", "search"):
        sub = folder / kind
        if sub.exists() and not sub.is_dir():
            raise ValueError(f"{sub} is a file, but sgquant keeps its {kind} records in a "
                             f"folder of that name: move the file away or {hint}")
    why = _probe_writable(folder)
    if why:
        raise ValueError(f"results folder {folder} is not writable ({why}): make it "
                         f"writable or {hint}")
    return folder


def check_output_file(path: "str | os.PathLike", written_by_sgquant: Callable[[Any], bool],
                      option: str = "--output") -> Path:
    """``path`` checked before any work to be a file sgquant may write: not a folder,
    in a folder that exists or can be made and is writable, and not an existing file
    sgquant did not write (``written_by_sgquant(parsed JSON)`` says if it did)."""
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"{option} {out} is a folder: give a file name, "
                         f"e.g. {out / 'result.json'}")
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{option} {out}: {parent} is a file, not a folder: "
                         "choose another path")
    why = _probe_writable(parent)
    if why:
        raise ValueError(f"{option} {out} cannot be written: {parent} is not writable "
                         f"({why}); choose another path")
    if out.exists():
        try:
            ours = written_by_sgquant(parse_json(out.read_bytes(), str(out)))
        except (OSError, ValueError):
            ours = False
        if not ours:
            raise ValueError(f"{option} {out} exists and was not written by sgquant: "
                             "remove it or choose another file")
    return out
