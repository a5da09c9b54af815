"""What a quantization-aware epoch costs against an FP32 epoch, per model.

A book's cost is its number of epochs (``benchmarks/book_cost.py``), which holds only
while a quantization-aware epoch costs about an FP32 epoch. For each model (at the
profile's size, weights initialised under seed 0) on one dataset, this script times
``--epochs`` training epochs three ways side by side in this process, on one thread,
in alternating repeats (``sgquant.inference_time.side_by_side``): FP32, fine-tuning
with the paper's quantizer (``sgquant`` variant) and with SGQuant+'s (its quantizer and
its distillation), every feature at 4 bits over the profile's degree buckets. Each is
the best (smallest) of ``--repeats``; the ratio is

.. math:: r = \\min_i t^{\\text{quantized}}_i / \\min_i t^{\\text{FP32}}_i .

One line per model; the last line flags any ratio over 1.5 (or says all are within).

    .venv/bin/python benchmarks/epoch_ratio.py [--dataset Amazon-Computers]
        [--models gcn agnn gat] [--epochs 10] [--repeats 3] [--profile default]
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence

import torch

from sgquant.assignment import BitAssignment
from sgquant.checks import check_int
from sgquant.data import load_dataset
from sgquant.degree import degree_buckets
from sgquant.inference_time import side_by_side
from sgquant.measure import build_for
from sgquant.models import MODELS
from sgquant.profiles import get_profile
from sgquant.train import finetune, teacher_logits, train_model
from sgquant.variants import get_variant

from _args import ScriptParser, check_dataset, run_script  # benchmarks/_args.py

#: the largest quantization-aware epoch, in FP32 epochs, that keeps epochs a fair cost
LIMIT = 1.5
VARIANTS = ("sgquant", "sgquant+")


def parse(argv: Optional[Sequence[str]]):
    """The arguments, each checked before any work."""
    ap = ScriptParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="Cora")
    ap.add_argument("--models", nargs="+", default=["gcn", "agnn", "gat"],
                    choices=list(MODELS))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", default="default")
    args = ap.parse_args(argv)
    args.epochs = check_int(args.epochs, "--epochs", minimum=1)
    args.repeats = check_int(args.repeats, "--repeats", minimum=1)
    try:
        args.profile = get_profile(args.profile)
    except ValueError as exc:
        raise ValueError(f"--profile: {exc}") from None
    args.dataset = check_dataset(args.dataset, "--dataset")
    return args


def epoch_seconds(data, model: str, profile, epochs: int, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` seconds of one epoch: ``fp32`` and each of :data:`VARIANTS`."""
    torch.manual_seed(0)
    net = build_for(data, model, profile)
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    buckets = degree_buckets(data.edge_index, data.num_nodes, profile.num_buckets)
    assignment = BitAssignment.uniform(4, net.num_layers, buckets.num_buckets)
    teacher = teacher_logits(net, data, state)

    def fp32() -> None:
        net.load_state_dict(state)
        net.set_bits(None)
        train_model(net, data, epochs=epochs, patience=None)

    def quantized(name: str):
        v = get_variant(name)
        distill = v.finetune.distill
        return lambda: finetune(net, data, assignment, state, buckets=buckets,
                                options=v.options, epochs=epochs, evaluate_before=False,
                                distill=distill, teacher=teacher if distill else None)

    passes = {"fp32": fp32, **{name: quantized(name) for name in VARIANTS}}
    wall, _ = side_by_side(passes, repeats)
    return {k: min(v) / epochs for k, v in wall.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse(argv)
    data = load_dataset(args.dataset)
    print(f"epoch ratio on {args.dataset} ({args.profile.name} profile's models): "
          f"{args.epochs} epochs, best of {args.repeats} alternating repeats, one thread")
    over = []
    for model in args.models:
        t = epoch_seconds(data, model, args.profile, args.epochs, args.repeats)
        ratios = {name: t[name] / t["fp32"] for name in VARIANTS}
        over += [f"{model} {name} {r:.2f}x" for name, r in ratios.items() if r > LIMIT]
        print(f"{model}: FP32 epoch {1000 * t['fp32']:.1f} ms; "
              + "; ".join(f"{name} {1000 * t[name]:.1f} ms ({ratios[name]:.2f}x)"
                          for name in VARIANTS))
    if over:
        print(f"over {LIMIT}x an FP32 epoch: {', '.join(over)}")
    else:
        print(f"every quantization-aware epoch within {LIMIT}x an FP32 epoch")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
