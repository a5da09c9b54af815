"""Range rules as objects (sgquant.quantize.ranges): the options' serialised form is
pinned, every output of every existing rule equals what the quantizer gave before the
rules became objects, and a new rule is one class."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from sgquant.models.base import QuantPoint
from sgquant.packed.storage import pack_group
from sgquant.quantize import (CLIP_RULES, RANGE_RULES, QuantOptions, RangeChoice, RangeRule,
                              fake_quantize, linear_quantize, quant_range, quantization_error,
                              select_range)
from sgquant.variants import get_variant

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


#: (clip_percentile, clip_rule) of every existing rule, edge cases included.
RULES = [(None, "always"), (99.0, "always"), (60.0, "always"), (100.0, "always"),
         (99.0, "mse"), (99.9, "mse"), (75.0, "mse"), (100.0, "mse")]


# ------------------------------------------------------------ serialised options
def test_to_dict_of_the_methods_options_is_pinned():
    """Cache keys and stored records hold ``to_dict()``: its JSON stays byte for byte."""
    pinned = {
        "paper": (QuantOptions(), '{"rounding": "floor", "clip_percentile": null}'),
        "sgquant+": (get_variant("sgquant+").options,
                     '{"rounding": "nearest", "clip_percentile": null, "hidden": {"rounding": '
                     '"nearest", "clip_percentile": 99.0, "clip_rule": "mse"}, "att": '
                     '{"rounding": "nearest", "clip_percentile": 99.0, "clip_rule": "mse"}}'),
        "sgquant+p99": (get_variant("sgquant+p99").options,
                        '{"rounding": "nearest", "clip_percentile": null, "hidden": '
                        '{"rounding": "nearest", "clip_percentile": 99.0}, "att": '
                        '{"rounding": "nearest", "clip_percentile": 99.0}}'),
        "per-kind": (QuantOptions("floor", 99.5, input=QuantOptions("nearest"),
                                  att=QuantOptions("floor", 75, clip_rule="mse")),
                     '{"rounding": "floor", "clip_percentile": 99.5, "input": {"rounding": '
                     '"nearest", "clip_percentile": null}, "att": {"rounding": "floor", '
                     '"clip_percentile": 75.0, "clip_rule": "mse"}}'),
        "chapter 6": (QuantOptions("nearest", 99.0),
                      '{"rounding": "nearest", "clip_percentile": 99.0}'),
    }
    for name, (opts, text) in pinned.items():
        assert json.dumps(opts.to_dict()) == text, name
        assert QuantOptions.from_dict(json.loads(text)) == opts, name
    assert get_variant("sgquant+").options.label == (
        "nearest, min/max; hidden: nearest, clip p99 where smaller MSE; "
        "att: nearest, clip p99 where smaller MSE")


# ----------------------------------------------- outputs equal those of before
def _tensors() -> dict[str, torch.Tensor]:
    """Features-like tensors drawn with numpy (torch's samplers differ by CPU kernel)."""
    rng = np.random.default_rng(21)
    normal = rng.standard_normal((257, 7)).astype(np.float32)
    outl = rng.standard_normal((300, 5)).astype(np.float32)
    outl[rng.integers(0, 300, 6), rng.integers(0, 5, 6)] = np.float32([50, -40, 80, 33, -90, 61])
    relu = np.maximum(rng.standard_normal((129, 16)), 0).astype(np.float32)
    att = (rng.random((1000, 1)) ** 3).astype(np.float32)
    ties = rng.integers(-3, 4, (64, 8)).astype(np.float32)
    return {"normal": torch.from_numpy(normal), "outliers": torch.from_numpy(outl),
            "relu": torch.from_numpy(relu), "attention": torch.from_numpy(att),
            "ties": torch.from_numpy(ties), "constant": torch.full((20, 3), 0.5),
            "single": torch.tensor([[1.5]]),
            "float64": torch.from_numpy(rng.standard_normal((60, 4)))}


def _hash(h, *items) -> None:
    for v in items:
        if isinstance(v, torch.Tensor):
            h.update(str((tuple(v.shape), v.dtype)).encode())
            h.update(v.detach().contiguous().cpu().numpy().tobytes())
        else:
            h.update(float(v).hex().encode())


def _digest(x: torch.Tensor, clip, rule: str, bits_list, coded_bits) -> str:
    """SHA-256 of everything the quantizer gives ``x`` under one rule: fake quantization
    (forward and straight-through gradient), codes, range, error, a quantization point's
    groups, and packed and coded storage (bytes, min, scale, rows)."""
    h = hashlib.sha256()
    _hash(h, *quant_range(x, clip))
    groups = [torch.arange(0, x.size(0), 2), torch.arange(1, x.size(0), 2)]
    xf = x.to(torch.float32)
    for rounding in ("floor", "nearest"):
        opts = QuantOptions(rounding, clip, clip_rule=rule)
        for bits in bits_list:
            xg = x.clone().requires_grad_()
            y = fake_quantize(xg, bits, rounding, clip, rule)
            (y * torch.from_numpy(np.linspace(-1, 1, y.numel())).to(y.dtype).view_as(y)
             ).sum().backward()
            q = linear_quantize(x, bits, rounding, clip, rule)
            error = quantization_error(x, bits, rounding, clip, rule)
            point = QuantPoint("emb_L2")
            point.configure((bits, 16 if bits != 16 else 3), groups, opts)
            _hash(h, fake_quantize(x, bits, rounding, clip, rule), y, xg.grad, q.codes,
                  q.minimum, q.scale, *select_range(x, bits, rounding, clip, rule),
                  error["max_abs"], point(x))
            # the mean is a float32 sum, whose last bits depend on the CPU kernel
            ref = float((fake_quantize(xf, bits, rounding, clip, rule).double()
                         - xf.double()).square().mean())
            assert error["mse"] == pytest.approx(ref, rel=1e-4, abs=1e-30)
            for codec in ("packed", "sparse", "entropy") if bits in coded_bits else ("packed",):
                g = pack_group(lambda s, e: xf[s:e], x.size(0), tuple(x.shape[1:]), bits, opts,
                               chunk=8, codec=codec)
                if g.packed is not None:
                    _hash(h, g.packed.data, g.packed.minimum, g.packed.scale)
                _hash(h, g.rows(0, x.size(0)), g.gather(torch.arange(x.size(0) - 1, -1, -1)))
    return h.hexdigest()[:16]


#: :func:`_digest` of each tensor under each of :data:`RULES` (in that order), recorded
#: with the quantizer before range rules were objects (commit 9abd1e8; ``_digest`` uses
#: only names that existed then), the same under ATEN_CPU_CAPABILITY=default, avx2 and
#: avx512: bits 1, 2, 4, 16; coded at 2 bits.
BEFORE = {
    "outliers": ("13156ad91c92a591", "b319d401b69ed606", "4ae2ef2bd164abc5", "13156ad91c92a591",
                 "a0ea294c1b8c362d", "be17d0958956c3d0", "be25811a1b123cc3", "13156ad91c92a591"),
    "relu": ("5ea78a50d9caa506", "334eef6b2aa57e18", "9b163894565feedd", "5ea78a50d9caa506",
             "bf0c521eef68906a", "e86316a969f2911a", "495041886bb75071", "5ea78a50d9caa506"),
    "ties": ("43c55840f883b441", "43c55840f883b441", "580fce5332bfcd74", "43c55840f883b441",
             "43c55840f883b441", "43c55840f883b441", "e45b8bf42c0f67f8", "43c55840f883b441"),
    "constant": ("3cc98eaff6e2bb37", "3cc98eaff6e2bb37", "3cc98eaff6e2bb37", "3cc98eaff6e2bb37",
                 "3cc98eaff6e2bb37", "3cc98eaff6e2bb37", "3cc98eaff6e2bb37", "3cc98eaff6e2bb37"),
}

#: The same at bits 1, 2, 3, 4, 8, 16, coded at 1, 2 and 4 bits, on every tensor.
BEFORE_FULL = {
    "normal": ("5b87deaeb6ac3306", "695688cfdf967b84", "f10730712383f330", "5b87deaeb6ac3306",
               "3fbc39a6c574c2b2", "b346135a8bdc8c27", "d5979f2a828fd552", "5b87deaeb6ac3306"),
    "outliers": ("dc95730b1ab157ec", "b12473ac39189455", "bf30aa7d76dd9dd7", "dc95730b1ab157ec",
                 "4999e6662d6aa72b", "4bb522ac70407a2f", "a2259384331fb8cc", "dc95730b1ab157ec"),
    "relu": ("0192bb05c4f16e4e", "2badfb1b435e1b9e", "ea763d58c2970e20", "0192bb05c4f16e4e",
             "19d12b6c4fcd0813", "502c6e067dbb59ba", "3dd776506db031ec", "0192bb05c4f16e4e"),
    "attention": ("69c1761d1a3614de", "bd97cd34fd8ddded", "6a5aa90cf8666af1", "69c1761d1a3614de",
                  "7dac291e0091cd05", "718a022a138a8c9f", "caee2534a19d9676", "69c1761d1a3614de"),
    "ties": ("742192c5bec05bcf", "742192c5bec05bcf", "69ab70941a322365", "742192c5bec05bcf",
             "742192c5bec05bcf", "742192c5bec05bcf", "19c87f067a6ddc01", "742192c5bec05bcf"),
    "constant": ("0157c6819e656757", "0157c6819e656757", "0157c6819e656757", "0157c6819e656757",
                 "0157c6819e656757", "0157c6819e656757", "0157c6819e656757", "0157c6819e656757"),
    "single": ("6db4cbd9465d97fa", "6db4cbd9465d97fa", "6db4cbd9465d97fa", "6db4cbd9465d97fa",
               "6db4cbd9465d97fa", "6db4cbd9465d97fa", "6db4cbd9465d97fa", "6db4cbd9465d97fa"),
    "float64": ("dbda853ce92f2c1f", "1d03fdef7ba4a440", "0bf7540c9a54dbfc", "dbda853ce92f2c1f",
                "0cd818de679af235", "9686d5d8003fe4c4", "a95433058faad7ab", "dbda853ce92f2c1f"),
}


def test_every_rule_gives_what_it_gave_before_rule_objects():
    """Fake quantization, its gradient, codes, ranges, quantization points and packed and
    coded storage are bit-identical to before, for every existing rule."""
    tensors = _tensors()
    got = {n: tuple(_digest(tensors[n], clip, rule, (1, 2, 4, 16), (2,)) for clip, rule in RULES)
           for n in BEFORE}
    assert got == BEFORE


@pytest.mark.slow
def test_every_rule_gives_what_it_gave_before_rule_objects_everywhere():
    tensors = _tensors()
    got = {n: tuple(_digest(tensors[n], clip, rule, (1, 2, 3, 4, 8, 16), (1, 2, 4))
                    for clip, rule in RULES) for n in BEFORE_FULL}
    assert got == BEFORE_FULL


# ------------------------------------------------------------- a new rule
@dataclass(frozen=True)
class UnitRange(RangeRule):
    """A rule that is one class: the fixed range (0, 1) (of probabilities, say)."""

    name = "unit"

    def choose(self, x: torch.Tensor, bits: int, rounding: str) -> RangeChoice:
        return RangeChoice(torch.tensor(0.0), torch.tensor(1.0))

    @property
    def label(self) -> str:
        return "(0, 1)"


def test_a_new_range_rule_is_one_class_and_one_registration(monkeypatch, cora):
    """A rule registered by name works everywhere options go, with no other edit: the
    options (label, to_dict, from_dict), fake quantization at a quantization
    point, the functions of the option fields, and packed and coded inference."""
    from sgquant.assignment import BitAssignment
    from sgquant.models import build_model
    from sgquant.packed import PackedRunner

    monkeypatch.setitem(RANGE_RULES, "unit", UnitRange)  # what @register_rule does
    opts = QuantOptions("nearest", att=QuantOptions("nearest", clip_rule="unit"))
    assert opts.label == "nearest, min/max; att: nearest, (0, 1)"
    assert opts.to_dict()["att"] == {"rounding": "nearest", "clip_percentile": None,
                                     "clip_rule": "unit"}
    assert QuantOptions.from_dict(opts.to_dict()) == opts
    x = torch.tensor([-0.5, 0.2, 0.5, 0.9, 2.0])
    assert torch.equal(fake_quantize(x, 2, "nearest", None, "unit"),
                       torch.tensor([0.0, 1 / 3, 2 / 3, 1.0, 1.0]))
    assert linear_quantize(x, 2, "nearest", None, "unit").codes.tolist() == [0, 1, 2, 3, 3]
    torch.manual_seed(0)
    model = build_model("gat", cora.num_features, int(cora.y.max()) + 1, hidden=8,
                        heads=2).eval()
    asg = BitAssignment.uniform(2, model.num_layers)
    model.set_bits(asg, None, opts)
    assert model.quant_points["att_L1"].options.range_rule.label == "(0, 1)"
    with torch.no_grad():
        ref = model(cora.x, cora.edge_index)
    model.set_bits(None)
    for codec in ("packed", "entropy"):
        out = PackedRunner(model, asg, options=opts, codec=codec).run(cora.x, cora.edge_index)
        torch.testing.assert_close(out.logits, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="clip_rule 'unit' takes no clip_percentile"):
        QuantOptions(clip_percentile=99, clip_rule="unit")


def test_absmax_is_a_symmetric_range_observed_in_pieces():
    """``clip_rule="absmax"`` (its own module, one import line): the range (-a, a),
    a = max |x|, the same whether seen whole or chunk by chunk, on every path."""
    assert "absmax" in CLIP_RULES
    x = _tensors()["outliers"]
    a = float(x.abs().max())
    opts = QuantOptions("nearest", clip_rule="absmax")
    assert opts.label == "nearest, symmetric ±max|x|" and "absmax" in json.dumps(opts.to_dict())
    assert tuple(map(float, select_range(x, 3, "nearest", None, "absmax"))) == (-a, a)
    q = linear_quantize(x, 3, "nearest", None, "absmax")
    assert (q.minimum, q.scale) == (-a, float(torch.tensor(2 * a) / 7))
    g = pack_group(lambda s, e: x[s:e], x.size(0), tuple(x.shape[1:]), 3, opts, chunk=8)
    assert (g.packed.minimum, g.packed.scale) == (q.minimum, q.scale)
    assert torch.equal(g.rows(0, x.size(0)), opts.fake_quantize(x, 3))
    with pytest.raises(ValueError, match="clip_rule 'absmax' takes no clip_percentile"):
        QuantOptions(clip_percentile=99.0, clip_rule="absmax")


# ------------------------------------------------------ options as one object
def test_a_point_takes_its_own_options_and_nothing_quantizes_with_overrides():
    """A quantization point keeps its kind's options whatever it is given; options with
    per-kind overrides quantize no tensor themselves (they would apply the base options to
    every kind), and a rule that needs a percentile is refused without one on every path."""
    opts = QuantOptions("floor", hidden=QuantOptions("nearest", 99.0, clip_rule="mse"))
    point = QuantPoint("emb_L2")
    point.configure((2,), (), opts)
    assert point.options == opts.hidden
    assert "nearest, clip p99 where smaller MSE" in repr(point)
    x = _tensors()["outliers"]
    assert torch.equal(point(x), fake_quantize(x, 2, "nearest", 99.0, "mse"))
    with pytest.raises(ValueError, match="use options.for_point"):
        opts.fake_quantize(x, 2)
    with pytest.raises(ValueError, match="use options.for_point"):
        pack_group(lambda s, e: x[s:e], x.size(0), (5,), 2, opts, chunk=8)
    for call in (lambda: fake_quantize(x, 2, clip_rule="mse"),
                 lambda: linear_quantize(x, 2, clip_rule="mse"),
                 lambda: quantization_error(x, 2, clip_rule="mse")):
        with pytest.raises(ValueError, match="needs a clip_percentile"):
            call()
