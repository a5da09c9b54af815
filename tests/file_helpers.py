"""Helpers for the tests of files sgquant cannot write: an unwritable folder, a full
disk (a write that fails with ``ENOSPC``) and a free loopback port (a scheduler
address where nothing listens)."""
from __future__ import annotations

import errno
import os
import socket
import tempfile
from pathlib import Path
from typing import Callable

import pytest


def unwritable_folder(tmp_path: Path) -> "Path | str":
    """A folder this process cannot create files in: a read-only temporary folder, or
    (as root, who may write anywhere but in the kernel's files) /sys/kernel."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, "/sys/kernel"):
        try:
            fd, probe = tempfile.mkstemp(dir=candidate)
        except OSError:
            return candidate
        os.close(fd)
        os.unlink(probe)
    pytest.skip("no unwritable folder on this system")


def disk_full_for(monkeypatch: pytest.MonkeyPatch, full: Callable[[Path], bool],
                  call: str = "replace") -> list[Path]:
    """Make writing a file for which ``full(path)`` holds fail as on a full disk:
    ``os.replace`` onto it (``call="replace"``) or ``os.fsync`` of its temporary file,
    after the bytes are written (``"fsync"``) raises ``OSError(ENOSPC)``. Returns the
    paths refused."""
    refused: list[Path] = []
    real_replace, real_fsync = os.replace, os.fsync

    def replace(src, dst, *a, **k):
        if call == "replace" and full(Path(dst)):
            refused.append(Path(dst))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst, *a, **k)

    def fsync(fd):
        path = Path(os.readlink(f"/proc/self/fd/{fd}")) if os.path.exists("/proc/self/fd") \
            else None
        if call == "fsync" and path is not None and full(path):
            refused.append(path)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "fsync", fsync)
    return refused


def free_port() -> int:
    """A loopback TCP port where nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
