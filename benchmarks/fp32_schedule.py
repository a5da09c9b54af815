"""FP32 learning-rate schedules on a random-split graph, chosen on validation only.

Trains each FP32 model of ``--dataset`` (the profile's architectures, weights initialised
under the seed as :func:`sgquant.measure.prepare` does) under ``today`` (the constant rate
with the profile's caps: 1000 epochs, patience 100 on the random split) and each
candidate schedule (:class:`sgquant.schedule.Schedule`), one thread, and prints per
(model, schedule, seed): the best validation accuracy, the epoch it was reached, the
epochs run (with the schedule's patience), seconds, and the ratios against ``today``
measured in the same run. Test accuracy is never read: a schedule is chosen on
validation accuracy only (the architecture page, "protocol").

Each run is written to ``--out`` as soon as it ends (atomically); a rerun with the same
file skips the runs it holds, so an interrupted study loses nothing measured.

    .venv/bin/python benchmarks/fp32_schedule.py --dataset Amazon-Computers \\
        --models gcn agnn --seeds 0 1 --out /tmp/fp32_schedule.json
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread, before numpy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Optional, Sequence  # noqa: E402

import torch  # noqa: E402

from sgquant.cache import atomic_write_json, check_output_file  # noqa: E402
from sgquant.checks import check_choice, check_int_list  # noqa: E402
from sgquant.data import load_dataset  # noqa: E402
from sgquant.measure import build_for  # noqa: E402
from sgquant.models import MODELS  # noqa: E402
from sgquant.profiles import PROFILES, Profile, get_profile  # noqa: E402
from sgquant.schedule import SCHEDULES, Schedule  # noqa: E402
from sgquant.train import train_model  # noqa: E402

from _args import ScriptParser, check_dataset, run_script  # noqa: E402  (benchmarks/_args.py)

KIND = "sgquant fp32 schedule study"
#: The candidates (``today`` is the reference every ratio is taken against).
CANDIDATES: dict[str, Schedule] = {
    "today": SCHEDULES["constant"],
    # the registry's rate against twice it, constant: AGNN's 0.005 against PyG's 0.01
    "x2-constant": Schedule(lr_scale=2.0),
    "x5-cos100": Schedule(lr_scale=5.0, warmup=10, decay="cosine", floor=0.01, epochs=100,
                          patience=50),
    "x3-cos200": Schedule(lr_scale=3.0, warmup=10, decay="cosine", floor=0.01, epochs=200,
                          patience=50),
    "x5-cos200": Schedule(lr_scale=5.0, warmup=10, decay="cosine", floor=0.01, epochs=200,
                          patience=50),
    "x2-cos300": Schedule(lr_scale=2.0, warmup=10, decay="cosine", floor=0.01, epochs=300,
                          patience=100),
    "x1-cos300": Schedule(warmup=10, decay="cosine", floor=0.01, epochs=300, patience=100),
    "x5-plateau": Schedule(lr_scale=5.0, warmup=10, decay="plateau", factor=0.5, plateau=10,
                           floor=0.01, epochs=300, patience=40),
    **{name: s for name, s in SCHEDULES.items() if name != "constant"},
}


def is_study_file(payload: object) -> bool:
    return isinstance(payload, dict) and payload.get("kind") == KIND


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The options, each checked before any training (``_args``)."""
    parser = ScriptParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="Amazon-Computers")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--schedules", nargs="+", default=list(CANDIDATES),
                        help=f"among {', '.join(CANDIDATES)}, in the order run; 'today' always "
                        "runs (first unless placed)")
    parser.add_argument("--profile", default="default", choices=list(PROFILES),
                        help="the architectures and today's caps")
    parser.add_argument("--out", required=True, help="JSON file of the runs (resumed)")
    parser.add_argument("--report", action="store_true",
                        help="print the table of the runs --out holds; train nothing")
    args = parser.parse_args(argv)
    args.profile = get_profile(args.profile)
    args.models = [check_choice(m.lower(), "--models", tuple(MODELS)) for m in args.models]
    args.seeds = check_int_list(args.seeds, "--seeds", minimum=0)
    names = [check_choice(s, "--schedules", tuple(CANDIDATES)) for s in args.schedules]
    args.schedules = list(dict.fromkeys(names if "today" in names else ["today", *names]))
    args.out = check_output_file(args.out, is_study_file, "--out")
    args.dataset = check_dataset(args.dataset, "--dataset")
    return args


def train_one(data, model: str, seed: int, schedule: Schedule, profile: Profile,
              dataset: str) -> dict:
    """One FP32 training under ``schedule`` (where it sets no cap: today's caps of the
    profile for ``dataset``)."""
    today = get_profile(profile, fp32_schedule_random="constant")
    torch.manual_seed(seed)
    net = build_for(data, model, profile)
    result = train_model(net, data, epochs=today.fp32_epochs_for(dataset),
                         patience=today.fp32_patience_for(dataset), seed=seed,
                         schedule=schedule)
    return {"val_acc": result.val_acc, "epoch": result.epoch, "epochs_run": result.epochs_run,
            "seconds": result.seconds, "schedule": schedule.to_dict(),
            "val_curve": [round(h["val"], 5) for h in result.history]}


def row(rec: dict, ref: Optional[dict]) -> str:
    text = (f"{rec['val_acc'] * 100:7.2f} {rec['epoch']:6.0f} {rec['epochs_run']:6.0f} "
            f"{rec['seconds']:8.1f}")
    if ref is None or rec is ref:
        return text + "      -       -       -       -"
    return text + (f" {(rec['val_acc'] - ref['val_acc']) * 100:+6.2f} "
                   f"{rec['epoch'] / max(ref['epoch'], 1):7.2f} "
                   f"{rec['epochs_run'] / ref['epochs_run']:7.2f} "
                   f"{rec['seconds'] / ref['seconds']:7.2f}")


def report(runs: dict, args: argparse.Namespace) -> None:
    """Every run, then the means over seeds; ratios against ``today``, same model/seed."""
    print(f"{'model':5} {'schedule':11} {'seed':>4} {'val%':>7} {'best@':>6} {'run':>6} "
          f"{'seconds':>8} {'dval':>6} {'best@/t':>7} {'run/t':>7} {'sec/t':>7}")
    for model in args.models:
        for name in args.schedules:
            for seed in args.seeds:
                rec = runs.get(f"{model}/{name}/{seed}")
                if rec is not None:
                    ref = runs.get(f"{model}/today/{seed}")
                    print(f"{model:5} {name:11} {seed:4d} {row(rec, ref)}")
    print("\nmeans over the seeds measured for both the schedule and today:")
    for model in args.models:
        for name in args.schedules:
            pairs = [(runs[f"{model}/{name}/{s}"], runs[f"{model}/today/{s}"])
                     for s in args.seeds if f"{model}/{name}/{s}" in runs
                     and f"{model}/today/{s}" in runs]
            if pairs:
                mean = {k: statistics.fmean(r[k] for r, _ in pairs)
                        for k in ("val_acc", "epoch", "epochs_run", "seconds")}
                ref = {k: statistics.fmean(t[k] for _, t in pairs)
                       for k in ("val_acc", "epoch", "epochs_run", "seconds")}
                print(f"{model:5} {name:11} {len(pairs):4d} "
                      f"{row(mean, None if name == 'today' else ref)}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    if args.report and not args.out.exists():
        sys.exit(f"fp32_schedule.py: --report: {args.out} does not exist")
    payload = (json.loads(args.out.read_text()) if args.out.exists()
               else {"kind": KIND, "dataset": args.dataset, "runs": {}})
    if payload.get("dataset") != args.dataset:
        sys.exit(f"fp32_schedule.py: {args.out} holds runs of {payload.get('dataset')}, "
                 f"not {args.dataset}: choose another --out")
    runs = payload["runs"]
    print(f"FP32 schedules on {args.dataset} (validation only; profile "
          f"{args.profile.name}; one thread)", flush=True)
    data = None
    for seed in args.seeds:
        for name in args.schedules:
            for model in args.models:
                key = f"{model}/{name}/{seed}"
                if args.report or key in runs or not CANDIDATES[name].applies_to(model):
                    continue  # measured, or a schedule the profile never gives this model
                data = load_dataset(args.dataset) if data is None else data
                runs[key] = train_one(data, model, seed, CANDIDATES[name], args.profile,
                                      args.dataset)
                atomic_write_json(args.out, payload)
                print(f"done {key}: {row(runs[key], runs.get(f'{model}/today/{seed}'))}",
                      flush=True)
    report(runs, args)
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
