"""FP32 learning-rate schedules (:mod:`sgquant.schedule`): bad settings refused by name,
the default is today's training bit for bit, the profile's random-split schedule is used
on a random-split graph and never on a public split, and FP32 cache keys of the constant
rate are what they were before schedules existed."""
from __future__ import annotations

import math

import pytest
import torch

from sgquant import __version__
from sgquant.measure import fp32_key
from sgquant.models import build_model
from sgquant.profiles import get_profile
from sgquant.schedule import SCHEDULES, LRStepper, Schedule, as_schedule
from sgquant.train import train_model


def _gcn(graph) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("gcn", graph.num_features, 2, hidden=8)


@pytest.mark.parametrize("fields, needle", [
    ({"lr_scale": 0.0}, "lr_scale"), ({"lr_scale": -1.0}, "lr_scale"),
    ({"lr_scale": math.nan}, "lr_scale"), ({"warmup": -1}, "warmup"),
    ({"warmup": 10, "epochs": 10}, "warmup"), ({"warmup": 20, "epochs": 10}, "warmup"),
    ({"patience": 0}, "patience"), ({"epochs": 0}, "epochs"),
    ({"decay": "linear"}, "decay"), ({"floor": 1.0}, "floor"), ({"floor": -0.1}, "floor"),
    ({"factor": 1.0}, "factor"), ({"factor": 0.0}, "factor"), ({"plateau": 0}, "plateau"),
    ({"warmup": 1.5}, "warmup"), ({"models": ["gcn", "foo"]}, "models"),
    ({"models": "gcn"}, "models"), ({"models": []}, "models")])
def test_a_schedule_that_cannot_run_is_refused_by_name(fields, needle):
    with pytest.raises(ValueError, match=f"schedule {needle}"):
        Schedule(**fields)


def test_bad_schedules_are_refused_where_they_are_given(tiny_graph):
    with pytest.raises(ValueError, match="warmup must be shorter than training: 5 .* of 5"):
        train_model(_gcn(tiny_graph), tiny_graph, epochs=5, schedule=Schedule(warmup=5))
    with pytest.raises(ValueError, match="schedule must be a Schedule"):
        train_model(_gcn(tiny_graph), tiny_graph, epochs=5, schedule="cosine300")
    with pytest.raises(ValueError, match="fp32_schedule_random 'nope'.*constant"):
        get_profile("default", fp32_schedule_random="nope")
    with pytest.raises(ValueError, match="unknown field.*'lr'"):
        as_schedule({"lr": 0.1})
    with pytest.raises(ValueError, match="warmup must be shorter than training: 1000 .* 1000"):
        get_profile("default", fp32_schedule_random={"warmup": 1000})  # the 1000-epoch cap


def test_the_default_schedule_is_todays_training_bit_for_bit(tiny_graph):
    plain = train_model(_gcn(tiny_graph), tiny_graph, epochs=15, patience=None, seed=0)
    assert SCHEDULES["constant"] == Schedule()
    again = train_model(_gcn(tiny_graph), tiny_graph, epochs=15, patience=None, seed=0,
                        schedule=Schedule())
    assert again.history == plain.history
    assert all(torch.equal(again.state_dict[k], v) for k, v in plain.state_dict.items())
    moved = train_model(_gcn(tiny_graph), tiny_graph, epochs=15, patience=None, seed=0,
                        schedule=Schedule(lr_scale=3.0, warmup=2, decay="cosine"))
    assert moved.history != plain.history  # a schedule does change the training


def test_the_rates_follow_the_formulas():
    """Warm-up epoch k trains at k/(W+1) of the peak; then cosine towards floor x peak
    over the remaining E - W epochs; plateau cuts by ``factor`` after flat epochs."""
    def rates(schedule: Schedule, epochs: int, vals: list[float]) -> list[float]:
        opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
        stepper, out = LRStepper(schedule, opt, epochs), []
        for val in vals:
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            stepper.step(val)
        return out

    w, e, f = 3, 10, 0.1
    want = [2.0 * k / (w + 1) for k in range(1, w + 1)] + [
        2.0 * (f + (1 - f) * (1 + math.cos(math.pi * t / (e - w))) / 2) for t in range(e - w)]
    got = rates(Schedule(warmup=w, decay="cosine", floor=f), e, [0.5] * e)
    assert got == pytest.approx(want)
    flat = rates(Schedule(decay="plateau", plateau=2, factor=0.5, floor=0.3), 10,
                 [0.1, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2])
    assert flat == pytest.approx([2.0] * 5 + [1.0] * 3)


def test_the_chosen_schedule_is_used_on_the_random_split_only():
    """GCN and AGNN on a random split train under ``cosine300``; GAT (whose validation
    accuracy it lowered) and every model on a public split at the constant rate."""
    default = get_profile("default")
    chosen = default.fp32_schedule_random
    assert chosen == SCHEDULES["cosine300"] and not chosen.is_default
    for name in ("default", "full"):
        for model in ("gcn", "agnn"):
            assert get_profile(name).fp32_schedule_for("Amazon-Computers", model) == chosen
        assert get_profile(name).fp32_schedule_for("Amazon-Computers", "gat") == Schedule()
    assert default.fp32_schedule_for("Cora", "gcn") == Schedule()
    assert default.fp32_epochs_for("Amazon-Computers", "gcn") == chosen.epochs == 300
    assert default.fp32_patience_for("Amazon-Computers", "agnn") == chosen.patience
    assert default.fp32_epochs_for("Amazon-Computers", "gat") == 1000
    assert default.fp32_epochs_for("Cora", "gcn") == 200
    assert default.fp32_patience_for("Cora", "gcn") == 100
    key = fp32_key("Amazon-Computers", "gcn", 0, default)
    assert key["schedule"] == chosen.to_dict() and key["epochs"] == chosen.epochs
    assert fp32_key("Cora", "gcn", 0, default)["schedule"] == Schedule().to_dict()
    assert fp32_key("Amazon-Computers", "gat", 0, default)["schedule"] == Schedule().to_dict()
    # today's training stays runnable by name, and the profile then equals one without it
    today = get_profile("default", fp32_schedule_random="constant")
    assert today.fp32_schedule_random is None
    assert today == get_profile("default", fp32_schedule_random=None)
    assert today.fp32_epochs_for("Amazon-Computers") == 1000
    # a profile's dict (what a worker process gets, what the book prints) names the
    # schedule, or lists its fields if it has no name, and rebuilds the same profile
    assert default.to_dict()["fp32_schedule_random"] == "cosine300"
    odd = get_profile("default", fp32_schedule_random=Schedule(lr_scale=1.5))
    assert odd.to_dict()["fp32_schedule_random"]["lr_scale"] == 1.5
    for prof in (default, odd, today):
        assert type(prof)(**prof.to_dict()) == prof


def test_fp32_keys_of_the_constant_rate_name_it():
    """An FP32 model trained at the constant rate has the constant schedule in its key,
    whichever way the profile says it."""
    today = get_profile("default", fp32_schedule_random="constant")
    old = {"kind": "fp32", "model": "gcn", "seed": 0,
           "architecture": {"hidden": 32, "num_layers": 2}, "patience": 100,
           "training": {"lr": 0.01, "weight_decay": 5e-4, "dropout": 0.5},
           "schedule": Schedule().to_dict(), "version": __version__}
    assert fp32_key("Cora", "gcn", 0, get_profile("default")) == {
        **old, "dataset": "Cora", "epochs": 200}
    assert fp32_key("Amazon-Computers", "gcn", 0, today) == {
        **old, "dataset": "Amazon-Computers", "epochs": 1000}
    gat = {**old, "model": "gat", "architecture": {"hidden": 8, "heads": 8},
           "training": {"lr": 0.005, "weight_decay": 5e-4, "dropout": 0.6},
           "dataset": "Amazon-Computers", "epochs": 1000}
    for prof in (today, get_profile("default")):  # the default profile leaves GAT out
        assert fp32_key("Amazon-Computers", "gat", 0, prof) == gat


def test_prepare_trains_a_random_split_graph_under_its_schedule(tmp_path, monkeypatch):
    """A graph file (seeded random split) is trained by ``prepare`` with the profile's
    random-split schedule: its caps, its rate."""
    from sgquant import measure

    g = torch.Generator().manual_seed(0)
    path = tmp_path / "graph.pt"
    torch.save({"x": torch.rand(40, 4, generator=g),
                "edge_index": torch.randint(0, 40, (2, 120), generator=g),
                "y": torch.arange(40) % 2}, path)
    seen = []
    real = measure.train_model

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)
    monkeypatch.setattr(measure, "train_model", spy)
    schedule = Schedule(lr_scale=2.0, warmup=1, decay="cosine", epochs=4, patience=3)
    prof = get_profile("quick", fp32_schedule_random=schedule)
    setup = measure.prepare(str(path), "gcn", 0, prof, results=str(tmp_path / "res"))
    (kwargs,) = seen
    assert kwargs["schedule"] == schedule and kwargs["epochs"] == 4
    assert kwargs["patience"] == 3 and setup.fp32["epochs_run"] <= 4
    assert setup.fp32_key()["schedule"] == schedule.to_dict()
