"""A scheduler address where something else answers: one line within the timeout, exit 2.

Each server listens on 127.0.0.1 in a thread of this process: a web server, a listener
that accepts and never answers, an SSH daemon (speaks first), and proxies that answer
``HTTP/1.1 400`` (at once, or once the client spoke). Before, the web server and the
silent listener hung the search forever; the banner and the 400 made Dask try to
allocate exabytes and crash with a traceback.
"""
from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time
from typing import Any, Callable, Iterator

import pytest

from sgquant.runner.executors import make_executor
from sgquant.runner.scheduler import (DEFAULT_TIMEOUT, SCHEDULER_TIMEOUT_ENV, NotAScheduler,
                                      SchedulerUnreachable, check_greeting, scheduler_timeout)
from sgquant.settings import use_run_settings

BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@contextlib.contextmanager
def _listener(greet: bytes = b"", reply: bytes = b"") -> Iterator[int]:
    """A loopback TCP server: sends ``greet`` on accept; answers ``reply`` (and closes)
    once the client sent something; else holds the connection open, silent."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            held.append(conn)
            try:
                if greet:
                    conn.sendall(greet)
                if reply and conn.recv(65536):
                    conn.sendall(reply)
                    conn.close()
            except OSError:
                pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
        server.close()
        for conn in held:
            conn.close()


@contextlib.contextmanager
def _web_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


SERVERS: dict[str, Callable[[], Any]] = {
    "web server": _web_server,
    "silent listener": _listener,
    "ssh banner": lambda: _listener(greet=BANNER),
    "400 at once": lambda: _listener(greet=BAD_REQUEST),
    "400 proxy": lambda: _listener(reply=BAD_REQUEST),
}
#: what the one line says each server did
SEEN = {"web server": "sent nothing within 1 s", "silent listener": "sent nothing within 1 s",
        "ssh banner": "answered 'SSH-2.0-OpenSSH_9.2p1 Debian-2'",
        "400 at once": "answered 'HTTP/1.1 400 Bad Request'",
        "400 proxy": "sent nothing within 1 s"}


def _within(seconds: float, fn: Callable[[], Any]) -> BaseException:
    """The exception ``fn()`` raises, asserting it returns within ``seconds`` (the code
    before this fix hung: the test must fail, not hang)."""
    out: list[BaseException] = []

    def call() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    start = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still connecting after {seconds} s"
    assert out, "connected to something that is not a Dask scheduler"
    assert time.monotonic() - start < seconds
    return out[0]


@pytest.mark.parametrize("kind", list(SERVERS))
def test_something_else_at_the_address_is_one_line_within_the_timeout(kind, monkeypatch):
    monkeypatch.setenv(SCHEDULER_TIMEOUT_ENV, "1")
    with SERVERS[kind]() as port:
        address = f"tcp://127.0.0.1:{port}"
        for attempt in (lambda: make_executor(scheduler=address),
                        lambda: use_run_settings(scheduler=address, probe_scheduler=True)):
            error = _within(6, attempt)
            assert isinstance(error, NotAScheduler), repr(error)
            assert isinstance(error, ValueError)  # the command exits with 2
            message = str(error)
            assert "\n" not in message and address in message and SEEN[kind] in message


@pytest.mark.parametrize("kind", ["ssh banner", "silent listener"])
def test_the_search_command_exits_2_with_one_line(kind, tmp_path, monkeypatch, capsys):
    from sgquant.cli import main
    monkeypatch.setenv(SCHEDULER_TIMEOUT_ENV, "1")
    with SERVERS[kind]() as port:
        address = f"tcp://127.0.0.1:{port}"
        start = time.monotonic()
        code = main(["search", "--dataset", "Cora", "--model", "gcn", "--profile", "quick",
                     "--no-progress", "--results", str(tmp_path), "--scheduler", address])
    assert time.monotonic() - start < 6
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert address in err[0] and SEEN[kind] in err[0]
    assert not (tmp_path / "fp32").exists()  # nothing trained before the scheduler answered


def test_the_timeout_setting_is_checked(monkeypatch):
    monkeypatch.delenv(SCHEDULER_TIMEOUT_ENV, raising=False)
    assert scheduler_timeout() == DEFAULT_TIMEOUT == 10
    assert scheduler_timeout(2) == 2
    monkeypatch.setenv(SCHEDULER_TIMEOUT_ENV, "2.5")
    assert scheduler_timeout() == 2.5 and scheduler_timeout(4) == 4
    for bad in ("0", "-1", "nan", "inf", "ten"):
        monkeypatch.setenv(SCHEDULER_TIMEOUT_ENV, bad)
        with pytest.raises(ValueError, match=rf"\$SGQUANT_SCHEDULER_TIMEOUT must be a number "
                                             rf"of seconds > 0 \(e.g. 10\), got '{bad}'"):
            scheduler_timeout()
    with pytest.raises(ValueError, match="connect_timeout must be a finite number > 0"):
        scheduler_timeout(0)


def test_a_dask_scheduler_passes_the_greeting_check():
    from distributed import LocalCluster
    with LocalCluster(n_workers=0, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        assert check_greeting(cluster.scheduler_address, 5) is None
        pool = make_executor(scheduler=cluster.scheduler_address, connect_timeout=5)
        try:
            assert pool.address == cluster.scheduler_address
        finally:
            pool.shutdown()


def test_nothing_listening_is_unreachable_within_the_timeout():
    port = 9  # discard: below the ephemeral ports, so never a connection to itself
    start = time.monotonic()
    with pytest.raises(SchedulerUnreachable, match=rf"no Dask scheduler answered at "
                                                   rf"tcp://127.0.0.1:{port} within 1 s "
                                                   r"\(ConnectionRefusedError\)"):
        check_greeting(f"tcp://127.0.0.1:{port}", 1)
    assert time.monotonic() - start < 3
