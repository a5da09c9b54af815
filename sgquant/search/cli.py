"""``sgquant search``: auto-bit selection from the command line.

    sgquant search --dataset Cora --model gcn --method cost-model --budget 40

prints the chosen configuration and writes the whole result as JSON (by default
under ``RESULTS/search/``, named by every setting that changes the result:
:func:`default_output_name`). The results folder and the output file are checked
before any work; a search whose measurements fail too often, or whose result cannot
be written (a full disk), stops with the cause in one line and exit status 1, its
measurements kept in the cache for a rerun.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
from pathlib import Path, PurePath
from typing import Any

from ..fidelity import DEFAULT_FIDELITY, FIDELITIES
from ..cache import (WriteFailed, check_output_file, check_results_folder, writable_folder,
                     write_result_json)
from ..models import MODELS
from ..profiles import PROFILES
from ..variants import ABLATION
from ..settings import RunSettings
from .driver import METHODS, search
from .failures import SearchFailed
from .result import SearchResult
from .spec import COST_MODEL_SETTINGS, SearchSpec
from .strategy import PAPER_STRATEGY

__all__ = ["add_cli", "default_output_name", "is_search_result"]


def is_search_result(payload: Any) -> bool:
    """Whether ``payload`` (parsed JSON) is a result ``sgquant search`` wrote."""
    return isinstance(payload, dict) and {"method", "dataset", "model", "records",
                                          "fp32"} <= set(payload)


#: The longest default result file name (the file system takes 255 bytes).
NAME_LIMIT = 120


def default_output_name(result: SearchResult, strategy_label: str = "sgquant") -> str:
    """``<dataset>-<model>-<method>[-paper]-seed<S>-<profile>-b<budget>-tol<T>-<hash>.json``:
    readable parts plus a hash of every setting that changes the result (bit choices,
    rounds, strategy, confirmation ...), so no two searches share a file. A graph file
    gives its file name's stem (its full path is in the hash), characters outside
    ``A-Za-z0-9._+-`` become ``_``, and the name is at most :data:`NAME_LIMIT`
    characters (the readable part is cut, the hash kept): a plain file name that any
    file system takes, always inside the folder it is written to."""
    settings = {k: v for k, v in result.settings.items() if k not in ("workers", "scheduler")}
    identity = {"method": result.method, "dataset": result.dataset, "model": result.model,
                "seed": result.seed, "profile": result.profile, "budget": result.budget,
                "tolerance": result.tolerance, "bit_choices": list(result.bit_choices),
                "settings": settings}
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode())
    paper = "-paper" if strategy_label == "paper" else ""
    rest = (f"-{result.model}-{result.method}{paper}-seed{result.seed}-{result.profile}-"
            f"b{result.budget}-tol{result.tolerance:g}")
    tail = f"-{digest.hexdigest()[:8]}.json"
    dataset = PurePath(result.dataset).stem if os.sep in result.dataset else result.dataset
    readable = dataset[:max(8, NAME_LIMIT - len(rest) - len(tail))] + rest
    readable = re.sub(r"[^A-Za-z0-9._+-]", "_", readable).lstrip(".")
    return readable[:NAME_LIMIT - len(tail)] + tail


def _spec(args: argparse.Namespace) -> SearchSpec:
    """The search's settings from the command's options."""
    rounds: dict[str, Any] = {}
    if args.method == "cost-model":
        rounds = dict(n_mea=args.n_mea, n_sample=args.n_sample, n_iter=args.n_iter,
                      strategy=PAPER_STRATEGY if args.strategy == "paper" else None)
    else:
        for opt in COST_MODEL_SETTINGS[:-1]:
            if getattr(args, opt) is not None:
                raise ValueError(f"--{opt.replace('_', '-')} applies to --method cost-model "
                                 "only, not random")
    return SearchSpec(budget=args.budget, epoch_budget=args.epoch_budget,
                      tolerance=args.tolerance, seed=args.seed,
                      bit_choices=args.bits, confirm_top=args.confirm_top,
                      confirm_seeds=args.confirm_seeds, variant=args.variant,
                      fidelity=args.fidelity, **rounds)


def _run_cli(args: argparse.Namespace) -> int:
    # the run's settings, resolved and checked once, here (RunSettings)
    settings = RunSettings.resolve(args.profile, args.device, args.scheduler or None,
                                   args.workers, check_results_folder(args.results))
    results = settings.results
    if args.output:
        check_output_file(args.output, is_search_result)
    else:  # the default name is plain and bounded: only its folder can be unusable
        writable_folder(results / "search", "the search result")
    result = search(args.dataset, args.model, args.method, _spec(args), settings=settings,
                    progress=not args.no_progress)
    print(result.summary())
    out = Path(args.output) if args.output else (
        results / "search" / default_output_name(result, args.strategy or "sgquant"))
    if not args.output:
        check_output_file(out, is_search_result, option="result file")
    write_result_json(out, result.to_dict(), results)
    print(f"wrote {out}")
    return 0


def add_cli(subparsers: Any) -> None:
    """Register ``sgquant search``."""
    p = subparsers.add_parser(
        "search", help="auto-bit selection: cost-model or random search",
        description="Find the bit assignment with the largest memory saving whose "
                    "validation accuracy is within --tolerance points of FP32 "
                    "(measured configurations are cached: a rerun resumes).")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True, choices=MODELS)
    p.add_argument("--method", default="cost-model", choices=METHODS)
    p.add_argument("--budget", type=int, default=None,
                   help="configurations to measure (default: the profile's search_budget)")
    p.add_argument("--epoch-budget", type=int, default=None,
                   help="fine-tune epochs the candidates may spend (default: none, the "
                        "budget counts configurations; with it, --budget sets only the "
                        "rounds' sizes and rounds run until the epochs are spent)")
    p.add_argument("--tolerance", type=float, default=0.5,
                   help="allowed validation accuracy drop, in percentage points (default 0.5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default="default", choices=list(PROFILES))
    p.add_argument("--bits", type=int, nargs="+", default=None,
                   help="bit widths to choose from (default: the profile's bit_choices)")
    p.add_argument("--n-mea", type=int, default=None, help="cost model: measurements per round")
    p.add_argument("--n-sample", type=int, default=None,
                   help="cost model: candidates scored per round")
    p.add_argument("--n-iter", type=int, default=None, help="cost model: rounds after the first")
    p.add_argument("--strategy", default=None, choices=("sgquant", "paper"),
                   help="cost model: sgquant's candidate generation and picking (default) "
                        "or the paper's plain one (uniform candidates, one model)")
    p.add_argument("--variant", default="sgquant", choices=[v.name for v in ABLATION],
                   help="how configurations are quantized, fine-tuned and confirmed: "
                        "sgquant (the paper's method, default), sgquant+ (ours), or an "
                        "ablation step between them (selection, quantizer, distillation)")
    p.add_argument("--fidelity", default=DEFAULT_FIDELITY, choices=list(FIDELITIES),
                   help="when fine-tunes stop early: thrifty (default: once within tolerance, "
                        "or at a rung when far below it) or full (every fine-tune runs all "
                        "its epochs: the schedule before 2026-12-02)")
    p.add_argument("--confirm-top", type=int, default=None,
                   help="re-fine-tune the top N feasible configurations by saving and choose "
                        "the largest saving whose val accuracy is confirmed within tolerance "
                        "(default: the variant's, 3; 0: no confirmation, the top feasible one)")
    p.add_argument("--confirm-seeds", type=int, default=None,
                   help="extra fine-tune seeds per confirmed configuration "
                        "(default: the variant's, 2 for sgquant, 3 for sgquant+)")
    p.add_argument("--device", default=None,
                   help="auto, cpu, cuda or cuda:N for the FP32 model and in-process "
                        "fine-tunes (default: $SGQUANT_DEVICE, else auto)")
    p.add_argument("--workers", type=int, default=None,
                   help="measurement processes (default and maximum: the cores present; "
                        "0: in this process; with --scheduler local: the cluster's workers)")
    p.add_argument("--scheduler", default=None,
                   help="run the measurements on Dask: 'local' (a LocalCluster on this "
                        "machine) or a scheduler address such as tcp://host:8786 "
                        "(default: $SGQUANT_SCHEDULER, else a local process pool; reached "
                        "within $SGQUANT_SCHEDULER_TIMEOUT seconds, default 10)")
    p.add_argument("--output", default=None,
                   help="JSON file for the result (default: RESULTS/search/<name>.json, "
                        "named by the settings that change the result, at most "
                        f"{NAME_LIMIT} characters)")
    p.add_argument("--results", default=None,
                   help="results cache (default $SGQUANT_RESULTS or ./results)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_cli, failures=(SearchFailed, WriteFailed))
