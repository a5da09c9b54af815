"""The shared argument checks name the argument and the bad value."""
import numpy as np
import pytest

from sgquant.checks import (check_bool, check_choice, check_int, check_int_list, check_number,
                            check_optional_int)


def test_check_int():
    assert check_int(np.int64(3), "n", minimum=1) == 3 and type(check_int(np.int64(3), "n")) is int
    for bad in (True, 1.0, "3", None, 0):
        with pytest.raises(ValueError, match=r"n must be an integer >= 1, got"):
            check_int(bad, "n", minimum=1)
    with pytest.raises(ValueError, match=r"in \[1, 3\]"):
        check_int(4, "n", minimum=1, maximum=3)
    assert check_optional_int(None, "w") is None
    with pytest.raises(ValueError, match="w must be None or an integer >= 0, got -1"):
        check_optional_int(-1, "w", minimum=0)


def test_check_number_and_choice_and_bool():
    assert check_number(2, "t", minimum=0) == 2.0
    for bad in (float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match="t must be a finite number"):
            check_number(bad, "t")
    with pytest.raises(ValueError, match="> 0"):
        check_number(0.0, "temperature", above=0)
    assert check_choice("gcn", "model", ("gcn", "gat")) == "gcn"
    with pytest.raises(ValueError, match="unknown model 'GCNX'; choose one of gcn, gat"):
        check_choice("GCNX", "model", ("gcn", "gat"))
    with pytest.raises(ValueError, match="unknown k 1; choose one of 1.0"):
        check_choice(1, "k", (1.0,))  # no silent int/float/bool confusion
    assert check_bool(False, "f") is False
    with pytest.raises(ValueError, match="f must be True or False, got 1"):
        check_bool(1, "f")
    assert check_int_list((1, np.int32(2)), "bits", minimum=1) == [1, 2]
    with pytest.raises(ValueError, match="must not be empty"):
        check_int_list([], "bits")
    with pytest.raises(ValueError, match="list of integers"):
        check_int_list("1,2", "bits")
