import json

import pytest

from sgquant.assignment import BitAssignment, as_assignment, iter_fields


def test_uniform_and_shape():
    a = BitAssignment.uniform(4, num_layers=2, num_buckets=3)
    assert a.att_bits == (4, 4)
    assert a.emb_bits == ((4, 4, 4), (4, 4, 4))
    assert a.num_layers == 2 and a.num_buckets == 3
    assert not a.is_fp32
    assert BitAssignment.fp32(3).is_fp32


def test_named_constructors():
    cw = BitAssignment.component_wise(att_bits=2, emb_bits=8, num_layers=2)
    assert cw.att_bits == (2, 2) and cw.emb_bits == ((8,), (8,))
    taq = BitAssignment.topology_aware([8, 4, 2], num_layers=2)
    assert taq.emb_bits == ((8, 4, 2), (8, 4, 2)) and taq.att_bits == (8, 8)
    assert BitAssignment.topology_aware([8, 4], 2, att_bits=3).att_bits == (3, 3)
    lw = BitAssignment.layer_wise([8, 2], num_buckets=2)
    assert lw.att_bits == (8, 2) and lw.emb_bits == ((8, 8), (2, 2))
    full = BitAssignment.full([1, 2], [[3, 4], [5, 6]])
    assert full.emb_bits == ((3, 4), (5, 6))


def test_round_trip_and_stable_key():
    a = BitAssignment.full([32, 2], [[1, 4, 16], [8, 8, 2]])
    assert BitAssignment.from_dict(a.to_dict()) == a
    assert BitAssignment.from_json(a.to_json()) == a
    assert as_assignment(a.to_dict()) == a and as_assignment(a.to_json()) == a
    assert json.loads(json.dumps(a.to_dict())) == a.to_dict()
    assert a.key() == BitAssignment.full((32, 2), ((1, 4, 16), (8, 8, 2))).key()
    assert a.key() != BitAssignment.full([32, 2], [[1, 4, 16], [8, 8, 3]]).key()
    # the key is a fixed function of the content, not of the process
    assert a.key() == "%s" % a.key() and len(a.key()) == 16


def test_flat_fields_and_iteration():
    a = BitAssignment.full([2, 3], [[4, 5], [6, 7]])
    assert a.flat() == {"att_L1": 2, "emb_L1_B0": 4, "emb_L1_B1": 5,
                        "att_L2": 3, "emb_L2_B0": 6, "emb_L2_B1": 7}
    assert list(iter_fields(a))[:2] == [("att", 1, None, 2), ("emb", 1, 0, 4)]


def test_expand_buckets():
    a = BitAssignment.uniform(4, 2)
    assert a.expand_buckets(3).emb_bits == ((4, 4, 4), (4, 4, 4))
    with pytest.raises(ValueError, match="cannot expand"):
        BitAssignment.uniform(4, 2, 2).expand_buckets(3)


@pytest.mark.parametrize("bits", [0, 17, 31, 64, -1, 2.5, "8", True, None])
def test_bad_bits_named(bits):
    with pytest.raises(ValueError, match=r"1\.\.16|allowed|32"):
        BitAssignment.uniform(bits, 2)


@pytest.mark.parametrize("att, emb, message", [
    ([], [], "at least one layer"),
    ([4, 4], [[4]], "2 layers but emb_bits has 1"),
    ([4, 4], [[4, 4], [4]], "same, non-zero number"),
    ([4], [[]], "same, non-zero number"),
    (4, [[4]], "list of ints"),
])
def test_malformed(att, emb, message):
    with pytest.raises(ValueError, match=message):
        BitAssignment(att, emb)


def test_malformed_dicts():
    with pytest.raises(ValueError, match="missing"):
        BitAssignment.from_dict({"att_bits": [4]})
    with pytest.raises(ValueError, match="unexpected"):
        BitAssignment.from_dict({"att_bits": [4], "emb_bits": [[4]], "x": 1})
    with pytest.raises(ValueError, match="malformed"):
        BitAssignment.from_json("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        as_assignment(42)


def test_check_shape():
    a = BitAssignment.uniform(4, 2, 3)
    a.check_shape(2, 3)
    a.check_shape(2)
    with pytest.raises(ValueError, match="2 layers but the model has 4"):
        a.check_shape(4)
    with pytest.raises(ValueError, match="3 degree buckets"):
        a.check_shape(2, 5)


def test_bad_sizes():
    with pytest.raises(ValueError, match="num_layers"):
        BitAssignment.uniform(4, 0)
    with pytest.raises(ValueError, match="num_buckets"):
        BitAssignment.uniform(4, 2, num_buckets=0)


def test_deeply_nested_json_is_a_value_error():
    text = "[" * 10000 + "]" * 10000
    with pytest.raises(ValueError, match="nested too deeply"):
        BitAssignment.from_json('{"att_bits": ' + text + ', "emb_bits": [[1]]}')
    with pytest.raises(ValueError, match="JSON text"):
        BitAssignment.from_json({"att_bits": [1]})
