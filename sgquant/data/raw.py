"""Raw files on disk: mirror copies, checksums, download rollback, folder locks.

Rules kept here (see the architecture page):

* the mirror (``SGQUANT_DATA_MIRROR``) is only read; a copy goes to a temporary
  name, is checked against its known checksum, then renamed, so an interrupted or
  bad copy leaves no raw file; copies honour the umask (a shared root stays
  readable);
* before a download, the raw folder is moved aside; a failed or interrupted
  download puts it back as it was;
* before any reader opens raw files, each file with a known checksum must match
  it, and a pickle reader accepts no file without one.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Iterator, Optional

from .checksums import expected_for, mismatch
from .errors import CorruptRawFileError, DatasetUnavailableError, one_line
from .paths import DATA_ENV
from .catalogue import DatasetSpec

__all__ = ["MIRROR_ENV", "DOWNLOAD_TIMEOUT_S", "mirror_root", "missing_files", "copy_from_mirror",
           "verify_raw", "unreadable", "unavailable", "stash_path", "stash_raw", "restore_raw",
           "folder_lock", "download_timeout", "remove_path"]

#: Environment variable naming a read-only folder of raw files in the same layout.
MIRROR_ENV = "SGQUANT_DATA_MIRROR"
#: Socket timeout (seconds) applied while PyG downloads, if none is set globally.
DOWNLOAD_TIMEOUT_S = 60.0


def mirror_root() -> Optional[Path]:
    """The mirror folder named by ``SGQUANT_DATA_MIRROR``, or None."""
    value = os.environ.get(MIRROR_ENV)
    return Path(value).expanduser() if value else None


def missing_files(directory: Path, files: "list[str] | tuple[str, ...]") -> list[str]:
    """The entries of ``files`` that are not files in ``directory``."""
    return [f for f in files if not (directory / f).is_file()]


def corrupt(spec: DatasetSpec, raw: Path, bad: dict[str, str], origin: str) -> CorruptRawFileError:
    """The error for raw files that do not match their checksums (``bad``: file ->
    what differs); ``origin`` is ``"root"``, ``"download"`` or ``"mirror"`` (what to
    do differs)."""
    what = "; ".join(f"{f}: {problem}" for f, problem in bad.items())
    if origin == "download":
        msg = (f"Downloaded raw file(s) of {spec.name} do not match their known checksums "
               f"({what}): not kept, {raw} is as it was; try again, or place verified copies "
               f"there")
    elif origin == "mirror":
        src = (mirror_root() or Path(".")) / spec.folder
        msg = (f"Raw file(s) in {MIRROR_ENV} do not match their known checksums ({src}/{what}): "
               f"not copied; restore them in the mirror from their source")
    else:
        names = ", ".join(str(raw / f) for f in bad)
        msg = (f"Raw file(s) {names} of {spec.name} are truncated or altered ({what}): delete "
               f"them and load again (they are then copied from {MIRROR_ENV} or downloaded)")
    return CorruptRawFileError(msg, dataset=spec.name, raw_dir=raw, missing=tuple(bad))


def verify_raw(spec: DatasetSpec, raw: Path, origin: str = "root") -> None:
    """Check every raw file of ``spec`` in ``raw`` against its known checksum.

    Files without one pass, unless ``spec``'s reader unpickles its raw files: then
    they are refused (a pickle runs code).
    """
    bad: dict[str, str] = {}
    for file in spec.files:
        expected = expected_for(f"{spec.folder}/{file}")
        if expected is None:
            if spec.pickle_reader:
                bad[file] = "no known checksum, and its reader unpickles it"
            continue
        problem = mismatch(raw / file, expected)
        if problem is not None:
            bad[file] = problem
    if bad:
        raise corrupt(spec, raw, bad, origin)


def unreadable(spec: DatasetSpec, raw: Path, exc: BaseException, origin: str = "root"
               ) -> CorruptRawFileError:
    """The error for a reader that failed on raw files (truncated, not the format):
    names the files the reader's message mentions, else all of them."""
    text = str(exc)
    named = [f for f in spec.files if f in text or Path(f).name in text] or list(spec.files)
    what = ", ".join(str(raw / f) for f in named)
    if origin == "download":
        msg = (f"Downloaded raw file(s) {what} of {spec.name} could not be read "
               f"({one_line(exc)}): not kept, {raw} is as it was; try again")
    else:
        msg = (f"Raw file(s) {what} of {spec.name} could not be read ({one_line(exc)}): "
               f"truncated or corrupt? delete it and load again (it is then copied from "
               f"{MIRROR_ENV} or downloaded)")
    return CorruptRawFileError(msg, dataset=spec.name, raw_dir=raw, missing=tuple(named))


def unavailable(spec: DatasetSpec, raw: Path, missing: list[str], reason: str
                ) -> DatasetUnavailableError:
    """The one-line error naming the folder to fill and the files missing."""
    mirror = mirror_root()
    if mirror is None:
        note = f"{MIRROR_ENV} is not set"
    elif (mirror / spec.folder).is_dir():
        note = f"{MIRROR_ENV}={mirror} lacks them too"
    else:
        note = f"{MIRROR_ENV}={mirror} has no {spec.folder} folder"
    layout = "OGB's zip, unzipped" if spec.loader == "ogb" else "PyG raw layout"
    msg = (f"Dataset {spec.name!r} is unavailable: {reason}. Place the missing raw file(s) "
           f"{', '.join(missing)} in the folder {raw} ({layout}), or set {DATA_ENV} to a "
           f"data root that has them, or {MIRROR_ENV} to a folder in the same raw layout to "
           f"copy them from ({note}).")
    return DatasetUnavailableError(msg, dataset=spec.name, raw_dir=raw, missing=tuple(missing))


def _new_temp_file(directory: Path, name: str) -> Path:
    # os.open with mode 0o666 lets the umask decide the permissions (mkstemp's 0600
    # would make a shared data root unreadable to the group).
    while True:
        tmp = directory / f".{name}.{uuid.uuid4().hex[:12]}.part"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def copy_from_mirror(spec: DatasetSpec, dest: Path) -> list[str]:
    """Copy the raw files ``dest`` lacks from the mirror (read-only there); returns
    the names copied.

    Each file is copied to a temporary name, checked against its known checksum, and
    renamed: an interrupted or bad copy leaves no raw file.
    """
    mirror = mirror_root()
    if mirror is None:
        return []
    src_dir = mirror / spec.folder
    if not src_dir.is_dir():
        return []
    with contextlib.suppress(OSError):
        if dest.is_dir() and os.path.samefile(src_dir, dest):
            return []
    for stale in dest.rglob(".*.part") if dest.is_dir() else ():  # interrupted copies
        remove_path(stale)
    copied = []
    for name in missing_files(dest, spec.files):
        src = src_dir / name
        if not src.is_file():
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_temp_file(target.parent, target.name)
        try:
            shutil.copyfile(src, tmp)  # contents only: the copy stays writable
            expected = expected_for(f"{spec.folder}/{name}")
            problem = None if expected is None else mismatch(tmp, expected)
            if problem is not None:
                raise corrupt(spec, dest, {name: problem}, "mirror")
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        copied.append(name)
    return copied


def remove_path(path: Path) -> None:
    """Remove a file or folder, ignoring errors."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def stash_path(raw: Path) -> Path:
    """Where ``raw`` waits while a download runs: ``.<raw name>-before-download`` beside it."""
    return raw.parent / f".{raw.name}-before-download"


def stash_raw(raw: Path) -> None:
    """Move the raw folder aside before a download (PyG re-downloads every raw file
    when one is missing, overwriting the others in place)."""
    pending = stash_path(raw)
    if raw.exists():
        os.replace(raw, pending)
    else:
        pending.mkdir(parents=True)


def restore_raw(raw: Path) -> None:
    """Undo a failed or interrupted download: the raw folder becomes what it was."""
    pending = stash_path(raw)
    if not pending.is_dir():
        return
    if raw.exists():
        remove_path(raw)  # possibly partial downloads
    os.replace(pending, raw)


@contextlib.contextmanager
def folder_lock(raw: Path) -> Iterator[None]:
    """Exclusive inter-process lock on a dataset's raw folder (POSIX ``flock`` on
    ``.<raw name>.lock`` beside it; a no-op where unavailable, e.g. a read-only root)."""
    try:
        import fcntl

        handle = open(raw.parent / f".{raw.name}.lock", "a")  # noqa: SIM115
    except (ImportError, OSError):
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def download_timeout(seconds: float = DOWNLOAD_TIMEOUT_S) -> Iterator[None]:
    """Bound PyG's ``urlopen`` calls (made without a timeout), process-wide for the
    duration, unless the caller already set a default timeout."""
    if socket.getdefaulttimeout() is not None:
        yield
        return
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(None)
