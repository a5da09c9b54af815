"""Loading a registered dataset from the data root: mirror copy, download, rollback.

Order of work, under an inter-process lock on the dataset's raw folder:

1. a download interrupted earlier is undone (the raw folder comes back);
2. raw files the root lacks are copied from ``SGQUANT_DATA_MIRROR`` (checked);
3. files still missing are downloaded by the reader when ``download=True`` (the raw
   folder is moved aside first and restored if anything fails), else
   :class:`DatasetUnavailableError` names the folder and files;
4. before the reader opens raw files, they are checked against known checksums.

Without ``download`` the error comes before anything is touched.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from torch_geometric.data import Data

from .errors import CorruptRawFileError, one_line
from .paths import make_folder, root_error, unwritable
from .raw import (copy_from_mirror, download_timeout, folder_lock, mirror_root, missing_files,
                  restore_raw, stash_path, stash_raw, unavailable, unreadable, verify_raw)
from .readers import graph_from, open_dataset
from .files import graph_path, looks_like_path
from .names import unknown_dataset
from .catalogue import DATASETS, REGISTERED, DatasetSpec, lookup, raw_dir, spec_for

__all__ = ["available_datasets", "is_available", "load_registered"]


def _still_missing(spec: DatasetSpec, raw: Path) -> list[str]:
    """Raw files in neither ``raw`` nor the mirror."""
    missing = missing_files(raw, spec.files)
    mirror = mirror_root()
    if missing and mirror is not None:
        missing = missing_files(mirror / spec.folder, missing)
    return missing


def _present(spec: DatasetSpec, root: "str | os.PathLike[str] | None") -> bool:
    return not _still_missing(spec, raw_dir(spec.name, root))


def available_datasets(root: "str | os.PathLike[str] | None" = None, *,
                       include_other: bool = False) -> list[str]:
    """Canonical names whose raw files are all present, each file either in the root
    or in the ``SGQUANT_DATA_MIRROR`` folder. Nothing is loaded or copied.

    Only the paper's five (:data:`DATASETS`) unless ``include_other``.
    """
    return [n for n in (REGISTERED if include_other else DATASETS) if _present(spec_for(n), root)]


def is_available(name: "str | os.PathLike[str]",
                 root: "str | os.PathLike[str] | None" = None) -> bool:
    """Whether ``name`` can be loaded without a download: a registered dataset whose
    raw files are all in the root or the mirror, or an existing ``.npz``/``.pt`` file
    (its content is checked only by loading it). Nothing is loaded or copied."""
    spec = lookup(name)
    if spec is not None:
        return _present(spec, root)
    if not looks_like_path(name):
        raise unknown_dataset(name)
    try:
        graph_path(name)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def _fail_fast(spec: DatasetSpec, raw: Path) -> None:
    missing = _still_missing(spec, raw)
    if missing and not stash_path(raw).is_dir():
        raise unavailable(spec, raw, missing, "raw files are missing and download=False")


def load_registered(spec: DatasetSpec, root: Path, download: bool,
                    root_arg: "str | os.PathLike[str] | None" = None) -> Data:
    """Read ``spec`` from ``root`` (see the module docstring for the order of work)."""
    raw = root / spec.folder
    processed = root / spec.processed
    if not download:
        _fail_fast(spec, raw)
    make_folder(raw.parent, root_arg)
    try:
        with folder_lock(raw):
            dataset = _open_locked(spec, root, raw, processed, download)
    except OSError as exc:
        bad = unwritable(exc)
        if bad is None:
            raise
        raise root_error(Path(bad.filename), f"cannot be written ({bad.strerror})",
                         root_arg) from None
    return graph_from(spec, dataset)


def _open_locked(spec: DatasetSpec, root: Path, raw: Path, processed: Path,
                 download: bool) -> Any:
    restore_raw(raw)  # left by an interrupted download, if any
    copy_from_mirror(spec, raw)
    missing = missing_files(raw, spec.files)
    if missing and not download:
        raise unavailable(spec, raw, missing, "raw files are missing and download=False")
    origin = "download" if missing else "root"

    def open_(force_reload: bool) -> Any:
        return open_dataset(spec, root, force_reload=force_reload,
                            before_read=lambda: verify_raw(spec, raw, origin),
                            on_error=lambda exc: unreadable(spec, raw, exc, origin))

    processed_existed = processed.exists()
    if missing:
        stash_raw(raw)
    try:
        with download_timeout():
            try:
                dataset = open_(False)
            except CorruptRawFileError:
                raise
            except Exception:
                # A processed/ file left by an interrupted earlier run: rebuild it
                # from the raw files once.
                if missing or not processed_existed:
                    raise
                dataset = open_(True)
    except Exception as exc:
        # Leave nothing half-written: a processed/ folder created by this attempt,
        # and raw files it downloaded (the previous raw files come back).
        if not processed_existed:
            shutil.rmtree(processed, ignore_errors=True)
        if missing:
            restore_raw(raw)
            if isinstance(exc, CorruptRawFileError):
                raise
            reason = f"raw files are missing and the download failed ({one_line(exc, 500)})"
            raise unavailable(spec, raw, missing_files(raw, spec.files) or missing,
                              reason) from exc
        raise
    if missing:
        shutil.rmtree(stash_path(raw), ignore_errors=True)
    return dataset
