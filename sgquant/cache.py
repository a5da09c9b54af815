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

:func:`check_results_folder`, :func:`check_output_file` and :func:`writable_folder`
check a folder or output file before any work, so a run that cannot write its
results says so at once, in one line (a ``ValueError``). A write that fails later
(a full disk, a quota, a folder made read-only meanwhile) is a :class:`WriteFailed`:
one line naming the file and the cause, and no partial file is left behind.
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

from .checks import shorten

__all__ = ["RESULTS_VERSION", "RESULTS_CHANGES", "RESULTS_FINGERPRINT", "RESULTS_ENV",
           "WriteFailed", "results_root", "key_hash",
           "atomic_write_bytes", "atomic_write_json", "write_result_json", "parse_json",
           "current_umask", "ResultCache", "check_results_folder", "check_file_name",
           "check_output_file", "writable_folder", "stale_records_notice"]

#: The semantics of the code that makes records: part of every record's file name
#: (:func:`key_hash`), so a record of another version is never reused (it stays on disk;
#: see :func:`stale_records_notice`). Bumped when a change alters measured numbers or the
#: records' structure: what each version changed is in :data:`RESULTS_CHANGES`.
RESULTS_VERSION = "3"

#: What each results version changed (the stale-records notice names it).
RESULTS_CHANGES = {
    "2": "measurement records are checked field by field when read",
    "3": "the dropout masks, AGNN's learning rate and GCN's training product changed since "
         "version 2; cache keys now hold each model's training settings (learning rate, "
         "weight decay, dropout), every quantizer and fine-tune setting and the fine-tune's "
         "optimiser; records note the machine that made them",
}

#: The fingerprint of every result-changing default (:mod:`sgquant.fingerprint`) for
#: each results version; tests/test_results_version.py fails when today's differs from
#: :data:`RESULTS_VERSION`'s. When it does: bump the version, say what changed in
#: :data:`RESULTS_CHANGES`, and record the fingerprint ``python -m sgquant.fingerprint``
#: prints. (Version 3's was recorded again, its results unchanged, when the fingerprint
#: stopped counting settings whose default is ``None``: an optional search setting, the
#: epoch budget, had moved it.)
RESULTS_FINGERPRINT = {"3": "2b6f3462d4292f5a"}

#: the file in a results folder that says which :data:`RESULTS_VERSION` wrote it
VERSION_FILE = "results_version.json"

log = logging.getLogger("sgquant.cache")


#: The environment variable naming the results folder.
RESULTS_ENV = "SGQUANT_RESULTS"


def results_root(root: "str | os.PathLike | None" = None) -> Path:
    """``root``, else ``$SGQUANT_RESULTS``, else ``./results``."""
    return Path(root or os.environ.get(RESULTS_ENV) or "results")


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


class WriteFailed(OSError):
    """A file could not be written (disk full, over quota, read-only file system, no
    permission ...): ``str()`` is one line naming the file and the cause, and ``note``
    (if any) what is kept and what to do. ``errno``/``strerror``/``filename`` are the
    cause's."""

    def __init__(self, path: "str | os.PathLike", cause: OSError, note: str = "") -> None:
        super().__init__(cause.errno, cause.strerror or str(cause), str(path))
        self.note = note

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}" + (
            f"; {self.note}" if self.note else "")


#: Characters of a file's name kept in its temporary name (``.<name>.<random>.tmp``),
#: so that any name the file system accepts also has a temporary name it accepts.
_TMP_NAME_CHARS = 40


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a temporary file and ``os.replace``; the file
    gets mode ``0o666`` less the umask, like any file the user creates. Any failure
    (:class:`WriteFailed`) leaves the old file, if any, and no temporary file."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:_TMP_NAME_CHARS]}.",
                                   suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, WriteFailed):
            raise WriteFailed(path, exc) from None
        raise


def atomic_write_json(path: Path, payload: Any) -> None:
    """:func:`atomic_write_bytes` of ``payload`` as indented JSON (keys sorted)."""
    atomic_write_bytes(path, _json_bytes(payload))


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, indent=1, sort_keys=True, default=str).encode()


def write_result_json(path: Path, payload: Any, results: "str | os.PathLike",
                      option: str = "--output") -> None:
    """A command's result file (:func:`atomic_write_json`); if it cannot be written, the
    :class:`WriteFailed` also says that what was measured stays in the results cache
    ``results``, so the same command, rerun, writes it without measuring again."""
    try:
        atomic_write_json(path, payload)
    except WriteFailed as exc:
        raise WriteFailed(path, exc, note=(
            f"everything measured is kept in the results cache {results}: rerun the same "
            f"command once the file can be written (or with {option} elsewhere); it reads "
            "the measurements from the cache instead of measuring again")) from None


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

    def _write(self, path: Path, payload: bytes) -> None:
        try:
            atomic_write_bytes(path, payload)
        except WriteFailed as exc:
            raise WriteFailed(path, exc, note="the records written before it stay in the "
                                              "cache: a rerun resumes from them") from None
        self._mark_version()

    def put(self, kind: str, key: dict, value: dict) -> None:
        """Store ``value`` for ``key`` (atomically; :class:`WriteFailed` if it cannot be)."""
        self._write(self.path(kind, key), _json_bytes({"key": key, "value": value}))

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
        self._write(self.path(kind, key, ".pt"), buffer.getvalue())

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
            f"version {version or '1'}, now {RESULTS_VERSION}: "
            f"{RESULTS_CHANGES[RESULTS_VERSION]}): they are not reused, "
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


def writable_folder(folder: "str | os.PathLike", what: str) -> Path:
    """Create ``folder`` if needed and check that a file can be written in it;
    else ``ValueError`` naming ``what`` and the folder (or the file in its way)."""
    folder = Path(folder)
    blocker = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise ValueError(f"cannot write {what}: {blocker} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot write {what} in {folder}: {exc.strerror or exc}") from None
    why = _probe_writable(folder)
    if why:
        raise ValueError(f"cannot write {what} in {folder}: {why}")
    return folder


def check_results_folder(root: "str | os.PathLike | None" = None,
                         option: str = "--results") -> Path:
    """The results folder (:func:`results_root`), created if missing, checked to be a
    writable folder before any work; else a one-line ``ValueError`` saying what to do."""
    folder = results_root(root)
    hint = (f"give a writable folder in {option}" if option.startswith("$") else
            f"give a writable folder with {option} (or ${RESULTS_ENV})")
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


def _name_max(path: Path) -> tuple[int, int]:
    """The longest file name and path (bytes) the file system holding ``path`` takes."""
    existing = next((p for p in (path, *path.parents) if os.path.isdir(p)), Path("."))
    try:
        return os.pathconf(existing, "PC_NAME_MAX"), os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf here: POSIX's usual limits
        return 255, 4096


def check_file_name(path: "str | os.PathLike", option: str = "--output") -> Path:
    """``path`` if the file system can hold a file of that name (each part of it at
    most ``NAME_MAX`` bytes, the whole under ``PATH_MAX``, no NUL character), else a
    one-line ``ValueError`` naming ``option``: checked before any work."""
    out = Path(path)
    if "\0" in str(out):
        raise ValueError(f"{option} {shorten(repr(str(out)))} contains a NUL character: "
                         "choose another name")
    name_max, path_max = _name_max(out.absolute())
    for part in out.parts:
        if len(os.fsencode(part)) > name_max:
            which = "its file name" if part == out.name else f"its folder {shorten(part)}"
            raise ValueError(f"{option} {shorten(str(out))}: {which} has "
                             f"{len(os.fsencode(part))} bytes, more than the {name_max} the "
                             "file system allows: choose a shorter name")
    if len(os.fsencode(str(out.absolute()))) >= path_max:
        raise ValueError(f"{option} {shorten(str(out))}: the path is longer than the "
                         f"{path_max} bytes the file system allows: choose a shorter path")
    return out


def check_output_file(path: "str | os.PathLike", written_by_sgquant: Callable[[Any], bool],
                      option: str = "--output") -> Path:
    """``path`` checked before any work to be a file sgquant may write: a name the file
    system takes (:func:`check_file_name`), not a folder, in a folder that exists or can
    be made and is writable, and not an existing file sgquant did not write
    (``written_by_sgquant(parsed JSON)`` says if it did)."""
    out = check_file_name(path, option)
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
