"""Dask scheduler addresses: checked in form, then reached within a total timeout.

:func:`check_scheduler` checks an address's form (``local`` or ``scheme://host:port``).
:func:`connect_client` reaches the scheduler there, all within
:func:`scheduler_timeout` seconds (``$SGQUANT_SCHEDULER_TIMEOUT``, default 10): for a
``tcp://`` address it first reads the handshake a Dask scheduler sends as soon as it
accepts a connection (:func:`check_greeting`), so that something else listening there
(a web server, an SSH daemon, a proxy answering ``HTTP/1.1 400``, a silent listener)
is one line naming the address and what it said, never a hang nor an attempt to
allocate the exabytes its first 8 bytes would announce as a Dask message; then a
:class:`distributed.Client` connects. Every failure is a
:class:`SchedulerUnreachable` (a :class:`ValueError` too: the command exits with 2).
"""
from __future__ import annotations

import os
import socket
import struct
import threading
import time
from typing import Any, Optional
from urllib.parse import urlsplit

from ..checks import check_number

__all__ = ["SCHEDULER_ENV", "SCHEDULER_TIMEOUT_ENV", "SCHEDULER_SCHEMES", "DEFAULT_TIMEOUT",
           "SchedulerUnreachable", "NotAScheduler", "check_scheduler", "scheduler_timeout",
           "check_greeting", "connect_client"]

#: Environment variable naming the default Dask scheduler (``local`` or an address).
SCHEDULER_ENV = "SGQUANT_SCHEDULER"
#: Environment variable: seconds allowed to reach a scheduler (all steps together).
SCHEDULER_TIMEOUT_ENV = "SGQUANT_SCHEDULER_TIMEOUT"
#: seconds allowed to reach a scheduler when ``$SGQUANT_SCHEDULER_TIMEOUT`` is not set
DEFAULT_TIMEOUT = 10.0
#: address schemes of a Dask scheduler (``tcp://host:8786`` ...)
SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")
#: Dask's default scheduler port (an address without one)
DEFAULT_PORT = 8786
#: the largest handshake accepted (a Dask scheduler's is about 60 bytes)
MAX_GREETING = 1 << 16

_ADVICE = "check the address given with --scheduler / $SGQUANT_SCHEDULER"


class SchedulerUnreachable(ConnectionError, ValueError):
    """No Dask scheduler answered at the given address in time."""


class NotAScheduler(SchedulerUnreachable):
    """Something that is not a Dask scheduler answered at the given address."""


def check_scheduler(scheduler: Optional[str]) -> Optional[str]:
    """``None``, ``"local"``, or a Dask scheduler address ``scheme://host[:port]``."""
    if scheduler is None or scheduler == "local":
        return scheduler
    if not isinstance(scheduler, str):
        raise ValueError(f"scheduler must be 'local' or an address such as "
                         f"tcp://host:8786, got {scheduler!r}")
    try:
        parts = urlsplit(scheduler)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in SCHEDULER_SCHEMES or not parts.hostname \
            or parts.path not in ("", "/") or (port is not None and port <= 0):
        raise ValueError(f"scheduler {scheduler!r} is not a Dask scheduler address: give "
                         f"'local' or scheme://host:port with scheme one of "
                         f"{', '.join(SCHEDULER_SCHEMES)} (e.g. tcp://10.0.0.5:8786)")
    return scheduler


def scheduler_timeout(timeout: Optional[float] = None) -> float:
    """Seconds allowed to reach a scheduler: ``timeout``, else
    ``$SGQUANT_SCHEDULER_TIMEOUT``, else :data:`DEFAULT_TIMEOUT`; a finite number > 0."""
    if timeout is not None:
        return check_number(timeout, "connect_timeout", above=0)
    raw = os.environ.get(SCHEDULER_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        return check_number(float(raw), SCHEDULER_TIMEOUT_ENV, above=0)
    except ValueError:
        raise ValueError(f"${SCHEDULER_TIMEOUT_ENV} must be a number of seconds > 0 "
                         f"(e.g. 10), got {raw!r}") from None


def _shown(data: bytes) -> str:
    """The first line of what a server sent, as readable text (at most 60 characters)."""
    line = data.split(b"\n", 1)[0].strip().decode("latin-1")
    text = "".join(c if c.isprintable() else "?" for c in line)
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


def _open(address: str, deadline: float, timeout: float) -> socket.socket:
    """A TCP connection to ``address``, retried (as Dask does) until ``deadline``."""
    from distributed.comm.addressing import parse_address, parse_host_port

    host, port = parse_host_port(parse_address(address)[1], DEFAULT_PORT)
    pause, error = 0.05, None
    while time.monotonic() < deadline:
        try:
            return socket.create_connection((host, port),
                                            timeout=max(deadline - time.monotonic(), 0.01))
        except OSError as exc:  # refused, unreachable, timed out: try again until the end
            error = exc
            time.sleep(max(min(pause, deadline - time.monotonic()), 0))
            pause = min(pause * 2, 1.0)
    raise SchedulerUnreachable(
        f"no Dask scheduler answered at {address} within {timeout:g} s "
        f"({type(error).__name__ if error else 'TimeoutError'}): start one "
        f"(dask scheduler), or {_ADVICE}")


def _receive(sock: socket.socket, data: bytes, size: int, deadline: float) -> bytes:
    """``data`` and what the peer sends next, until ``size`` bytes, EOF or ``deadline``."""
    while len(data) < size:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(max(size - len(data), 4096))
        except (socket.timeout, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return data


def check_greeting(address: str, timeout: Optional[float] = None) -> None:
    """Raise unless a Dask scheduler greets at ``address`` (``tcp://``) within ``timeout``
    seconds (:func:`scheduler_timeout`).

    A Dask scheduler writes its handshake as soon as it accepts a connection: an
    8-byte length, then msgpack frames holding its ``python`` and ``pickle-protocol``.
    Nothing is sent to the server. :class:`SchedulerUnreachable` when no connection
    opens in time, :class:`NotAScheduler` for any other answer (or none).
    """
    import msgpack
    from distributed.protocol.utils import unpack_frames

    timeout = scheduler_timeout(timeout)
    deadline = time.monotonic() + timeout
    with _open(address, deadline, timeout) as sock:
        data = _receive(sock, b"", 8, deadline)
        if not data:
            said = (f"sent nothing within {timeout:g} s (a Dask scheduler greets at once)"
                    if time.monotonic() >= deadline else "closed it without a word")
            raise NotAScheduler(f"{address} accepted the connection but {said}: it is not a "
                                f"Dask scheduler (or one too busy to answer); {_ADVICE}, or "
                                f"allow more time with ${SCHEDULER_TIMEOUT_ENV}")
        size = struct.unpack_from("Q", data)[0] if len(data) >= 8 else 0
        if 16 <= size <= MAX_GREETING:
            data = _receive(sock, data, 8 + size, deadline)
    try:
        frames = unpack_frames(memoryview(data)[8:8 + size])
        info = msgpack.unpackb(frames[0], raw=False, use_list=False)
        if isinstance(info, dict) and {"python", "pickle-protocol"} <= set(info):
            return
    except Exception:  # noqa: BLE001 - any garbled answer is "not a Dask scheduler"
        pass
    raise NotAScheduler(f"{address} is not a Dask scheduler: it answered {_shown(data)} "
                        f"where a scheduler sends its Dask handshake; {_ADVICE}")


def connect_client(address: str, timeout: Optional[float] = None) -> Any:
    """A :class:`distributed.Client` of the scheduler at ``address``, reached within
    ``timeout`` seconds in all (:func:`scheduler_timeout`), else
    :class:`SchedulerUnreachable` (:class:`NotAScheduler` when something else answers).

    A ``tcp://`` address is checked first (:func:`check_greeting`); the client then
    connects in a helper thread, given up at the deadline (Dask bounds the TCP
    connection but not the handshake read after it).
    """
    from distributed import Client

    timeout = scheduler_timeout(timeout)
    deadline = time.monotonic() + timeout
    greeted = urlsplit(address).scheme == "tcp"
    if greeted:
        check_greeting(address, timeout)
    out: dict[str, Any] = {}

    def connect() -> None:
        try:
            out["client"] = Client(address, timeout=max(deadline - time.monotonic(), 0.1))
        except BaseException as exc:  # noqa: BLE001 - reported below in one line
            out["error"] = exc

    thread = threading.Thread(target=connect, name="sgquant-connect-scheduler",
                              daemon=True)
    thread.start()
    thread.join(max(deadline - time.monotonic(), 0) + 1.0)
    if "client" in out:
        return out["client"]
    error = out.get("error")
    seen = "no answer" if error is None else \
        f"{type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}"
    what = (f"the Dask scheduler at {address} greeted but took no client" if greeted else
            f"no Dask scheduler answered at {address}")
    raise SchedulerUnreachable(f"{what} within {timeout:g} s ({seen.rstrip(': ')}): "
                               f"start one (dask scheduler), or {_ADVICE}")
