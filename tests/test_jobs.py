"""Where measurement jobs run: process-pool workers die with a killed search, jobs need
no results folder, and a Dask cluster gives the same answer as the local pool."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
from search_checks import search_args

from sgquant.runner import SerialExecutor, make_executor
from sgquant.runner.executors import SchedulerUnreachable, check_scheduler, close_executor
from sgquant.runner.orphans import QuietSpawnContext
from sgquant.search import random_search

REPO = Path(__file__).resolve().parents[1]
QUICK = dict(profile="quick", progress=False)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _workers(pid: int) -> list[int]:
    """The spawn workers (not the resource tracker) below process ``pid``."""
    out = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                out.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    return out


def _search_cmd(results: Path, where: list[str]) -> tuple[list[str], dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get(
        "PYTHONPATH", "")])}
    return [sys.executable, "-m", "sgquant.cli", "search", "--dataset", "Cora", "--model",
            "gcn", "--profile", "quick", "--method", "random", "--budget", "60",
            "--workers", "2", "--no-progress", "--results", str(results), *where], env


@pytest.mark.parametrize("sig, where", [
    (signal.SIGKILL, []),
    pytest.param(signal.SIGTERM, [], marks=pytest.mark.slow),
    pytest.param(signal.SIGKILL, ["--scheduler", "local"], marks=pytest.mark.slow)])
def test_workers_die_with_a_killed_search_and_the_pipe_closes(sig, where, tmp_path):
    """``sgquant search --workers 2`` (a process pool, or a Dask LocalCluster) killed
    while measuring: no worker is alive 5 s later and its output pipe closes."""
    from sgquant.measure import prepare
    prepare("Cora", "gcn", 0, "quick", str(tmp_path))  # the FP32 model is cached
    cmd, env = _search_cmd(tmp_path, where)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "measure").glob("*.json")):  # the workers are measuring
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "no measurement within 120 s"
            time.sleep(0.2)
        workers = _workers(proc.pid)
        assert len(workers) == 2
        proc.send_signal(sig)
        output: list[bytes] = []
        reader = threading.Thread(target=lambda: output.append(proc.stdout.read()),
                                  daemon=True)
        reader.start()
        killed = time.monotonic()
        while any(_alive(w) for w in workers) and time.monotonic() - killed < 5:
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers), "workers outlived their parent by 5 s"
        reader.join(timeout=5)
        assert not reader.is_alive(), "the output pipe stayed open"
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("where", [[], ["--scheduler", "local"]])
def test_ctrl_c_in_a_terminal_stops_a_search_at_once_with_one_line(where, tmp_path):
    """SIGINT to the whole process group (Ctrl-C in a terminal) while the workers
    measure: one line, exit 130 within seconds, no worker traceback, no worker left,
    and every measurement finished before is in the cache (it printed 2-7 worker
    tracebacks, and took up to 105 s with a local Dask cluster)."""
    from sgquant.measure import prepare
    prepare("Cora", "gcn", 0, "quick", str(tmp_path))  # the FP32 model is cached
    cmd, env = _search_cmd(tmp_path, where)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "measure").glob("*.json")):  # the workers are measuring
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no measurement within 120 s"
            time.sleep(0.2)
        workers = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        measured = {p.name: p.read_bytes() for p in (tmp_path / "measure").glob("*.json")}
        start = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert lines == ["sgquant search: interrupted (measured results are kept in the cache)"], \
        stderr
    assert took < 8, f"took {took:.1f} s to stop"
    time.sleep(0.5)
    assert not any(_alive(w) for w in workers)
    for name, content in measured.items():
        assert (tmp_path / "measure" / name).read_bytes() == content


def test_workers_ignore_ctrl_c_and_an_interrupted_run_ends_them_at_once():
    """A process pool's workers start with SIGINT ignored (a terminal's Ctrl-C goes to
    the whole process group: each worker printed a traceback) and an interrupted run
    ends them itself, without waiting for their jobs."""
    with ProcessPoolExecutor(1, mp_context=QuietSpawnContext()) as bare:  # no initializer
        assert bare.submit(signal.getsignal, signal.SIGINT).result() == signal.SIG_IGN
    pool = make_executor(1)
    try:
        pid = pool.submit(os.getpid).result()
        os.kill(pid, signal.SIGINT)
        assert pool.submit(os.getpid).result() == pid  # alive and working
        pool.submit(time.sleep, 60)
    finally:
        start = time.monotonic()
        close_executor(pool, interrupted=True)
    assert time.monotonic() - start < 5 and not _alive(pid)


def test_an_interrupted_search_stops_its_executor_at_once(tmp_path, monkeypatch):
    from sgquant.search import driver
    closed: list[bool] = []

    def close(executor: Any, interrupted: bool = False) -> None:
        closed.append(interrupted)
        executor.shutdown()

    def ctrl_c(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(driver, "close_executor", close)
    monkeypatch.setattr(driver, "prepare", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        random_search("Cora", "gcn", **search_args(budget=2, workers=1, results=tmp_path, **QUICK))
    monkeypatch.setattr(driver, "prepare", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        random_search("Cora", "gcn", **search_args(budget=2, workers=1, results=tmp_path, **QUICK))
    assert closed == [True, False]


def test_a_worker_whose_parent_is_gone_ends_itself():
    """The worker initializer exits at once when it does not run under the parent it
    was started for (the parent died before the worker set up its watch)."""
    code = subprocess.run([sys.executable, "-c", "from sgquant.runner.orphans import "
                           "die_with_parent; die_with_parent(1); print('alive')"],
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert code.returncode == 1 and "alive" not in code.stdout


def test_scheduler_addresses_are_checked():
    assert check_scheduler(None) is None and check_scheduler("local") == "local"
    assert check_scheduler("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    for bad in ("10.0.0.5:8786", "http://host:8786", "tcp://", "tcp://host:99999", "foo",
                "tcp://host:8786/path"):
        with pytest.raises(ValueError, match="is not a Dask scheduler address"):
            check_scheduler(bad)


def test_an_unreachable_scheduler_is_one_line_within_seconds(tmp_path, capsys, monkeypatch):
    from sgquant.cli import main
    monkeypatch.setenv("SGQUANT_SCHEDULER_TIMEOUT", "2")
    start = time.monotonic()
    with pytest.raises(SchedulerUnreachable, match="no Dask scheduler answered at "
                                                   "tcp://127.0.0.1:9 within 2 s"):
        make_executor(scheduler="tcp://127.0.0.1:9", connect_timeout=2)
    assert time.monotonic() - start < 15
    argv = ["search", "--dataset", "Cora", "--model", "gcn", "--profile", "quick",
            "--no-progress", "--results", str(tmp_path)]
    assert main(argv + ["--scheduler", "tcp://127.0.0.1:9"]) == 2  # bad input, as below
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no Dask scheduler answered at tcp://127.0.0.1:9" in err[0]
    assert not (tmp_path / "fp32").exists()  # nothing trained before the scheduler answered
    assert main(argv + ["--scheduler", "127.0.0.1:8786"]) == 2
    assert "is not a Dask scheduler address" in capsys.readouterr().err


def dask_cluster():
    from distributed import LocalCluster
    return LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address=None)


def test_a_small_search_on_a_dask_cluster_runs_there_and_matches_in_process(tmp_path):
    from distributed import Client
    kw = dict(budget=2, seed=0, confirm_top=0, **QUICK)
    with dask_cluster() as cluster, Client(cluster) as client:
        pids = set(client.run(os.getpid).values())
        on_dask = random_search("Cora", "gcn", **search_args(
            scheduler=cluster.scheduler_address, results=tmp_path / "dask", **kw))
    here = random_search("Cora", "gcn", **search_args(
        executor=SerialExecutor(), results=tmp_path / "here", **kw))
    assert {int(w.rsplit(":", 1)[1]) for w in on_dask.records["worker"]} <= pids
    assert set(here.records["worker"]) == {f"{__import__('socket').gethostname()}:"
                                           f"{os.getpid()}"}
    cols = ["config_key", "val_acc", "val_acc_before", "saving"]
    assert on_dask.records[cols].equals(here.records[cols])
    assert on_dask.chosen == here.chosen and on_dask.chosen_test_acc == here.chosen_test_acc


@pytest.mark.slow
def test_a_search_on_a_dask_cluster_runs_there_and_matches_the_local_pool(tmp_path):
    from distributed import Client
    kw = dict(budget=4, seed=0, confirm_top=1, confirm_seeds=1, **QUICK)
    with dask_cluster() as cluster, Client(cluster) as client:
        pids = set(client.run(os.getpid).values())
        on_dask = random_search("Cora", "gcn", **search_args(
            scheduler=cluster.scheduler_address, results=tmp_path / "dask", **kw))
    local = random_search("Cora", "gcn", **search_args(workers=2, results=tmp_path / "local", **kw))
    ran_on = {int(w.rsplit(":", 1)[1]) for w in on_dask.records["worker"]}
    ran_on |= {int(w.rsplit(":", 1)[1]) for w in on_dask.confirmations["worker"]}
    assert ran_on and ran_on <= pids and os.getpid() not in ran_on
    assert set(on_dask.records["status"]) == {"measured"}
    assert on_dask.settings["scheduler"] == cluster.scheduler_address
    assert on_dask.settings["workers"] == 2
    cols = ["config_key", "val_acc", "val_acc_before", "saving"]
    assert on_dask.records[cols].equals(local.records[cols])
    assert on_dask.chosen == local.chosen
    assert on_dask.chosen_test_acc_mean == local.chosen_test_acc_mean
    # the driver wrote the cache; the workers wrote nothing of their own
    assert len(list((tmp_path / "dask" / "measure").glob("*.json"))) == \
        len(on_dask.records) + on_dask.num_confirmations


def test_make_executor_local_cluster_and_serial():
    assert isinstance(make_executor(0), SerialExecutor)
    pool = make_executor(1, scheduler="local")
    try:
        assert pool.num_workers == 1 and pool.address.startswith("tcp://127.0.0.1:")
        assert pool.submit(os.getpid).result() != os.getpid()
    finally:
        pool.shutdown()
    assert pool.client.status == "closed"


def test_local_cluster_workers_ignore_ctrl_c_and_an_interrupted_run_ends_them_at_once():
    """A local Dask cluster's workers ignore SIGINT (each printed a traceback on
    Ctrl-C) and an interrupted run kills them within a second (Dask's close waits 4 s
    for a busy worker, then logs a warning)."""
    pool = make_executor(1, scheduler="local")
    try:
        assert set(pool.client.run(signal.getsignal, signal.SIGINT).values()) == \
            {signal.SIG_IGN}
        pids = list(pool.client.run(os.getpid).values())
        busy = pool.submit(time.sleep, 60)
        while not pool.client.processing():  # the job runs
            time.sleep(0.05)
    finally:
        start = time.monotonic()
        close_executor(pool, interrupted=True)
    assert time.monotonic() - start < 3, f"{time.monotonic() - start:.1f} s"
    assert pool.client.status == "closed" and busy.cancelled()
    time.sleep(0.2)
    assert not any(_alive(p) for p in pids)
