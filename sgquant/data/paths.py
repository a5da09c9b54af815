"""Where datasets live: the data root, and a one-line error when it cannot be used.

The root is the ``root`` argument, else ``$SGQUANT_DATA``, else
``~/.cache/sgquant/datasets``. Each dataset keeps its raw files in a folder below it
(PyG's raw layout, see :mod:`sgquant.data.catalogue`).
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Optional

__all__ = ["DATA_ENV", "DEFAULT_ROOT", "data_root", "root_source", "check_data_root",
           "make_folder", "root_error", "unwritable"]

#: Environment variable naming the data root.
DATA_ENV = "SGQUANT_DATA"
#: Default data root when neither argument nor ``SGQUANT_DATA`` is given.
DEFAULT_ROOT = Path("~/.cache/sgquant/datasets")

#: errno values that mean "this folder cannot be written" (not a network failure).
UNWRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def data_root(root: "str | os.PathLike[str] | None" = None) -> Path:
    """The data root: ``root`` if given, else ``$SGQUANT_DATA``, else
    ``~/.cache/sgquant/datasets``."""
    if root is None:
        root = os.environ.get(DATA_ENV) or DEFAULT_ROOT
    return Path(root).expanduser()


def root_source(root: "str | os.PathLike[str] | None") -> str:
    """Where the data root came from, for messages."""
    if root is not None:
        return "the root argument"
    return DATA_ENV if os.environ.get(DATA_ENV) else "the default"


def root_error(path: Path, problem: str, root: "str | os.PathLike[str] | None" = None) -> ValueError:
    """The one-line error for a data root that cannot be used."""
    where = data_root(root)
    return ValueError(
        f"data root {where} (from {root_source(root)}) cannot be used: {path} {problem}; "
        f"set {DATA_ENV} (or pass root=) to a writable folder"
    )


def check_data_root(root: "str | os.PathLike[str] | None" = None) -> Path:
    """The data root, after checking that it is a folder or could be created as one.

    Touches nothing. Raises :class:`ValueError` naming the path when the root is a
    file, or when its nearest existing ancestor is not a folder.
    """
    path = data_root(root)
    if path.exists():
        if not path.is_dir():
            raise root_error(path, "is a file, not a folder", root)
        return path
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise root_error(path, f"cannot be created ({ancestor} is a file, not a folder)", root)
    return path


def make_folder(path: Path, root: "str | os.PathLike[str] | None" = None) -> None:
    """``mkdir -p path``; a failure becomes :func:`root_error` naming the path."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise root_error(path, f"cannot be created ({exc.strerror or exc})", root) from None


def unwritable(exc: BaseException) -> Optional[OSError]:
    """``exc`` if it is an :class:`OSError` saying a path cannot be written, else None.

    Network errors (also :class:`OSError`) have none of these errno values and no
    file name, so they are not mistaken for an unwritable root.
    """
    if isinstance(exc, OSError) and exc.errno in UNWRITABLE and exc.filename:
        return exc
    return None
