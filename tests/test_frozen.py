"""SGQuant+ frozen: its settings as data under a version, which the code must match."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from sgquant import frozen, variants


def test_sgquant_plus_is_what_it_was_frozen_as():
    """Fails when a setting of SGQuant+ (its variant, the default fidelity, the cost
    model's strategy) moves without a new frozen version."""
    assert frozen.check_frozen("sgquant+") == frozen.FROZEN["sgquant+"][-1]


def test_a_moved_setting_is_named(monkeypatch):
    plus = variants.get_variant("sgquant+")
    moved = dataclasses.replace(plus, final_factor=plus.final_factor + 1)
    monkeypatch.setattr(variants, "get_variant", lambda name: moved)
    with pytest.raises(ValueError, match=r"variant\.final_factor.*freeze a new version"):
        frozen.check_frozen("sgquant+")


def test_frozen_settings_by_version_and_refusals():
    s = frozen.frozen_settings("sgquant+")
    assert s["variant"]["name"] == "sgquant+" and s["fidelity"]["name"] == "thrifty"
    table = frozen.settings_table()
    assert {"variant.final_factor", "fidelity.rung"} <= set(table["setting"])
    with pytest.raises(ValueError, match="no frozen version of method"):
        frozen.frozen_settings("sgquant")
    with pytest.raises(ValueError, match="has no frozen version '1999'"):
        frozen.frozen_settings("sgquant+", "1999")


def test_a_frozen_file_is_never_rewritten():
    version = frozen.FROZEN["sgquant+"][-1]
    done = subprocess.run([sys.executable, "-m", "sgquant.frozen", "sgquant+", version],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "never rewritten" in done.stderr


def test_the_design_table_says_what_each_choice_was_chosen_on():
    t = frozen.design_table()
    assert list(t.columns) == ["choice", "setting", "chosen_on", "evidence", "alternative"]
    assert set(t["chosen_on"]) <= {"validation", "test", "label-free", "not recorded"}
    assert t[["choice", "setting", "evidence", "alternative"]].notna().all().all()
    # the test-chosen settings are said to be test-chosen
    assert (t.set_index("choice").loc[["Clipped ranges", "Final fine-tune",
                                       "AGNN learning rate"], "chosen_on"] == "test").all()
    text = frozen.design_list()
    assert text.count("\n* ") == len(t) - 1 and "(chosen on *validation*)" in text


def _table(rows):
    import pandas as pd
    base = dict(status="run", variant_label="SGQuant+", variant="sgquant+", searches=3,
                fp32_val=80.0, acc_drop_std=0.1, saving_std=1.0)
    return pd.DataFrame([{**base, **r} for r in rows])


def test_development_beside_held_out_and_its_reading():
    from sgquant.chapters.held_out import development_vs_held_out, reading_held_out
    from sgquant.chapters.held_out import format_held_out

    dev = _table([dict(dataset="Cora", model="gcn", saving=30.0, acc_drop=0.2, val=79.8)])
    held = _table([dict(dataset="Cora", model="gcn", saving=15.0, acc_drop=0.7, val=79.0),
                   dict(dataset="Coauthor-CS", model="gcn", saving=20.0, acc_drop=0.3,
                        val=79.6)])
    c = development_vs_held_out(dev, held)
    cora = c[c["dataset"] == "Cora"].iloc[0]
    assert cora["acc_drop_diff"] == pytest.approx(0.5) and cora["saving_held"] == 15.0
    assert cora["val_drop_dev"] == pytest.approx(0.2) and cora["val_drop_held"] == pytest.approx(1.0)
    cs = c[c["dataset"] == "Coauthor-CS"].iloc[0]
    assert cs["acc_drop_dev"] != cs["acc_drop_dev"]  # not run in development: NaN
    text = reading_held_out(c, "2026.12")
    assert "by +0.50 points" in text and "0.50 times the development saving" in text
    assert "On Coauthor-CS gcn, never used in development, SGQuant+ saves 20.00x" in text
    shown = format_held_out(c)
    assert ("test drop", "held out") in shown.columns and shown.shape[0] == 2
    # the comparison and the frozen settings fit the book's column in a 1,400-px window
    from html_width import content_width, table_width
    from sgquant.plots import table
    for df in (shown, frozen.settings_table()):
        assert table_width(table(df, caption="x").to_html()) <= content_width(1400)


def test_held_out_runs_refuse_a_method_that_moved_before_any_work(monkeypatch, tmp_path):
    from sgquant.chapters import held_out
    from sgquant.settings import RunSettings

    def moved(name="sgquant+"):
        raise ValueError("method sgquant+ differs from its frozen version")
    monkeypatch.setattr(held_out, "check_frozen", moved)
    monkeypatch.setattr(held_out, "overall_runs", lambda *a, **k: pytest.fail("ran"))
    settings = RunSettings.resolve(profile="quick", results=tmp_path, workers=0)
    with pytest.raises(ValueError, match="differs from its frozen version"):
        held_out.held_out_runs(settings, ["sgquant", "sgquant+"])
