"""Cached FP32 records: a model whose weights are NaN or Inf is discarded with a warning
naming the record, and trained again, as any other invalid record is."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from sgquant.cache import ResultCache
from sgquant.measure import check_state, clear_setup_cache, prepare
from sgquant.models import build_model


def _graph_file(tmp_path: Path) -> Path:
    gen = torch.Generator().manual_seed(0)
    n = 40
    src = torch.arange(n)
    dst = (src + 1) % n
    path = tmp_path / "g.pt"
    torch.save({"x": torch.rand(n, 6, generator=gen),
                "edge_index": torch.stack([torch.cat([src, dst]), torch.cat([dst, src])]),
                "y": torch.arange(n) % 3}, path)
    return path


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_check_state_refuses_non_finite_weights(bad: float) -> None:
    model = build_model("gcn", 6, 3, hidden=8)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert check_state(state, model).keys() == state.keys()
    name = next(iter(state))
    state[name].view(-1)[:2] = bad
    counts = "2 NaN and 0 Inf" if bad != bad else "0 NaN and 2 Inf"
    with pytest.raises(ValueError, match=f"entry {name} holds {counts} value"):
        check_state(state, model)


def test_a_cached_model_with_nan_weights_is_discarded_and_trained_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path, results = _graph_file(tmp_path), tmp_path / "results"
    clear_setup_cache()
    first = prepare(str(path), "gcn", 0, "quick", results=str(results), device="cpu")
    key = first.fp32_key()
    record = ResultCache(results).path("fp32", key, ".pt")
    poisoned = {k: torch.full_like(v, float("nan")) for k, v in first.fp32_state.items()}
    torch.save(poisoned, record)
    clear_setup_cache()
    with caplog.at_level(logging.WARNING, logger="sgquant.cache"):
        again = prepare(str(path), "gcn", 0, "quick", results=str(results), device="cpu")
    assert f"discarding invalid cache record {record}" in caplog.text and "NaN" in caplog.text
    for name, value in first.fp32_state.items():  # trained again: the same weights
        assert torch.equal(again.fp32_state[name], value), name
    healed = torch.load(record, weights_only=True)  # and the record rewritten
    assert all(bool(torch.isfinite(v).all()) for v in healed.values())
    clear_setup_cache()
