"""Known checksums of raw files, and checking a file against them.

``raw_checksums.csv`` (shipped with the package) lists, per raw file (path relative
to the data root), its size, sha256 and git blob id, as recorded in the offline
mirror's README: every file of Cora, CiteSeer, PubMed, Amazon-Computers,
Coauthor-CS and Coauthor-Physics. ``ind.pubmed.allx`` is known only by its git blob
id, ``sha1(b"blob <size>\\0" + content)``.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

__all__ = ["Expected", "expected_for", "file_digests", "mismatch"]

_TABLE = Path(__file__).with_name("raw_checksums.csv")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Expected:
    """What a known raw file must be: size (if known), sha256 and/or git blob id."""

    size: Optional[int]
    sha256: Optional[str]
    git_blob: Optional[str]


@lru_cache(maxsize=1)
def _table() -> dict[str, Expected]:
    with open(_TABLE, newline="") as fh:
        return {
            row["path"]: Expected(int(row["bytes"]) if row["bytes"] else None,
                                  row["sha256"] or None, row["git_blob_sha1"] or None)
            for row in csv.DictReader(fh)
        }


def expected_for(relative: str) -> Optional[Expected]:
    """The known checksum of the raw file at ``relative`` (to the data root), or None."""
    return _table().get(relative)


def file_digests(path: Path) -> tuple[str, str]:
    """``(sha256, git blob sha1)`` of a file, read once in 1 MiB chunks."""
    size = path.stat().st_size
    sha256, blob = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha256.update(chunk)
            blob.update(chunk)
    return sha256.hexdigest(), blob.hexdigest()


def mismatch(path: Path, expected: Expected) -> Optional[str]:
    """None if ``path`` matches ``expected``, else what differs (size first, which
    catches a truncated file without hashing it)."""
    size = path.stat().st_size
    if expected.size is not None and size != expected.size:
        return f"{size:,} bytes, expected {expected.size:,}"
    sha256, blob = file_digests(path)
    if expected.sha256 is not None and sha256 != expected.sha256:
        return f"sha256 {sha256[:16]}..., expected {expected.sha256[:16]}..."
    if expected.git_blob is not None and blob != expected.git_blob:
        return f"git blob {blob[:16]}..., expected {expected.git_blob[:16]}..."
    return None
