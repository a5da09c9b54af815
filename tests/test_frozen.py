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
