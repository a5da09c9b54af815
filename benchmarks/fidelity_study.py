"""When may a search's fine-tune stop early? A study on validation accuracy only.

For each (dataset, model) it fine-tunes ``--configs`` uniformly random configurations
(the search space of the profile, :class:`sgquant.search.Sampler`, seed 0) from the FP32
model a Table III search uses, with each variant's fine-tune settings (its quantizer,
distillation, epoch 0 kept) for ``--epochs`` epochs (``0``: the profile's candidate
length; also the variant's final length with ``--final``), records the best validation
accuracy after every epoch, and prints, for every rung (a fraction of the epochs) and
margin (points below the threshold :math:`T` = FP32 validation minus the tolerance):

* ``false_kills``: configurations feasible after all epochs that the rung would have
  stopped (their best at the rung below :math:`T` - margin): the rule's error;
* ``epochs``: the epochs the rule spends (with the stop once feasible), as a fraction
  of the full fine-tunes' (measured side by side: the same runs, replayed).

Test accuracy is never read. Each (dataset, model, variant, epochs) is written to
``--out`` when it ends (atomically); a rerun skips what the file holds.

    .venv/bin/python benchmarks/fidelity_study.py --datasets Cora CiteSeer \\
        --models gcn agnn gat --configs 30 --out /tmp/fidelity_study.json
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread, before numpy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Optional, Sequence  # noqa: E402

from sgquant.cache import atomic_write_json  # noqa: E402
from sgquant.checks import check_int  # noqa: E402
from sgquant.fidelity import Fidelity  # noqa: E402
from sgquant.measure import build_for, prepare  # noqa: E402
from sgquant.models import MODELS  # noqa: E402
from sgquant.profiles import PROFILES, get_profile  # noqa: E402
from sgquant.search import SearchSpace, Sampler  # noqa: E402
from sgquant.seeds import DEVELOPMENT  # noqa: E402
from sgquant.train import finetune  # noqa: E402
from sgquant.variants import VARIANTS  # noqa: E402

from _args import ScriptParser, check_dataset, run_script  # noqa: E402  (benchmarks/_args.py)

#: The FP32 model searched on: the development plan's first search model (seed 100).
SEARCH_MODEL = DEVELOPMENT.search_fp32(0)
KIND = "sgquant fidelity study"
RUNGS = (0.1, 0.2, 0.3, 0.5)
MARGINS = (1.0, 2.0, 3.0, 5.0, 10.0)


def curves(dataset: str, model: str, variant: str, epochs: int, configs: int,
           profile: str, results: str) -> dict:
    """The best-so-far validation curve of each configuration and the threshold."""
    prof = get_profile(profile)
    setup = prepare(dataset, model, SEARCH_MODEL, prof, results)
    v = VARIANTS[variant]
    space = SearchSpace.from_layout(setup.layout, prof.bit_choices)
    out = []
    for a in Sampler(space, 0).draw(configs):
        net = build_for(setup.data, setup.model_name, prof).to(setup.device)
        r = finetune(net, setup.data, a, setup.fp32_state,
                     buckets=setup.buckets if a.num_buckets > 1 else None,
                     options=v.options, epochs=epochs, seed=setup.seed,
                     evaluate_before=v.finetune.keep_epoch0, distill=v.finetune.distill,
                     teacher=None if v.finetune.distill is None else setup.teacher())
        best, curve = -1.0, []
        for h in r.history:  # validation only
            best = max(best, h["val"])
            curve.append(best)
        out.append(curve)
    return {"threshold": float(setup.fp32["val_acc"]) - 0.005, "curves": out}


def replay(study: dict, epochs: int) -> list[dict]:
    """False kills and the epochs spent for each (rung, margin), against full runs: each
    curve replayed through the :class:`~sgquant.fidelity.StopRule` a search would use."""
    T, rows = study["threshold"], []
    full = epochs * len(study["curves"])
    for rung in RUNGS:
        for margin in MARGINS:
            rule = Fidelity("study", stop_when_feasible=True, rung=rung,
                            margin=margin).rule(T - 1e-9, epochs)
            kills = spent = 0
            for c in study["curves"]:  # c[0]: epoch 0, c[e]: best after epoch e
                stop = next((e for e, b in enumerate(c) if rule.stops(e, b)), epochs)
                kills += bool(c[stop] < T - 1e-9 <= c[-1])  # stopped short of feasible
                spent += stop
            rows.append({"rung": rung, "margin": margin, "false_kills": kills,
                         "feasible": sum(c[-1] >= T - 1e-9 for c in study["curves"]),
                         "epochs_fraction": spent / full})
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = ScriptParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=["Cora", "CiteSeer"])
    p.add_argument("--models", nargs="+", default=["gcn", "agnn", "gat"], choices=MODELS)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--configs", type=int, default=30)
    p.add_argument("--final", action="store_true", help="also the variant's final length")
    p.add_argument("--profile", default="default", choices=list(PROFILES))
    p.add_argument("--results", default="results")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    check_int(args.configs, "--configs", minimum=1)
    names = [check_dataset(d, "--datasets") for d in args.datasets]
    out = Path(args.out)
    done = json.loads(out.read_text()) if out.exists() else {"kind": KIND, "runs": {}}
    if done.get("kind") != KIND:
        sys.exit(f"fidelity_study: {out} is not a file this study wrote; choose another --out")
    prof = get_profile(args.profile)
    for d in names:
        for m in args.models:
            for var in args.variants:
                lengths = [prof.finetune_epochs]
                if args.final:
                    lengths.append(VARIANTS[var].final_factor * prof.finetune_epochs)
                for e in dict.fromkeys(lengths):
                    key = f"{d}/{m}/{var}/{e}"
                    if key not in done["runs"]:
                        done["runs"][key] = curves(d, m, var, e, args.configs, args.profile,
                                                   args.results)
                        atomic_write_json(out, done)
                    best = [r for r in replay(done["runs"][key], e) if r["false_kills"] == 0]
                    best.sort(key=lambda r: r["epochs_fraction"])
                    print(key, "feasible", replay(done["runs"][key], e)[0]["feasible"],
                          "of", args.configs, "| no false kill:",
                          [(r["rung"], r["margin"], round(r["epochs_fraction"], 2))
                           for r in best[:4]], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
