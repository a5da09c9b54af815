"""Shared fixtures: datasets come from the offline mirror beside the checkout
(``../shared/datasets``) copied into a temporary root; results go to a
temporary cache. Nothing is ever written into the mirror."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MIRROR = REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory):
    """Point sgquant at a temporary data root, results cache and the mirror."""
    saved = {k: os.environ.get(k) for k in ("SGQUANT_DATA", "SGQUANT_RESULTS",
                                             "SGQUANT_DATA_MIRROR")}
    os.environ["SGQUANT_DATA"] = str(tmp_path_factory.mktemp("datasets"))
    os.environ["SGQUANT_RESULTS"] = str(tmp_path_factory.mktemp("results"))
    if MIRROR.is_dir():
        os.environ["SGQUANT_DATA_MIRROR"] = str(MIRROR)
    yield
    _restore_env(saved)


def _restore_env(saved: dict) -> None:
    """Put the environment variables of ``saved`` back (``None``: unset)."""
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def _run_settings_restored():
    """A test that sets the run's device or scheduler (``use_run_settings`` writes them to
    the environment for child processes) leaves them as they were: a scheduler left
    behind would send every later test's jobs to a Dask cluster."""
    saved = {k: os.environ.get(k) for k in ("SGQUANT_DEVICE", "SGQUANT_SCHEDULER")}
    yield
    _restore_env(saved)


@pytest.fixture
def one_thread():
    """One torch thread for the test (shared 2-core machines: tiny ops contend badly on
    2 threads); a module takes it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _need_mirror(name: str) -> None:
    if not MIRROR.is_dir():
        pytest.skip(f"offline datasets not found at {MIRROR}")


@pytest.fixture(scope="session")
def cora():
    _need_mirror("Cora")
    from sgquant.data import load_dataset
    return load_dataset("Cora")


@pytest.fixture(scope="session")
def citeseer():
    _need_mirror("CiteSeer")
    from sgquant.data import load_dataset
    return load_dataset("CiteSeer")


@pytest.fixture
def tiny_graph():
    """A 6-node undirected graph with known degrees and random features."""
    from torch_geometric.data import Data
    edges = [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (4, 5)]
    src = [a for a, b in edges] + [b for a, b in edges]
    dst = [b for a, b in edges] + [a for a, b in edges]
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 5, generator=g)
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    mask = torch.ones(6, dtype=torch.bool)
    return Data(x=x, edge_index=torch.tensor([src, dst]), y=y,
                train_mask=mask, val_mask=mask, test_mask=mask)
