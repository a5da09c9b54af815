"""Check the GPU path in under 5 minutes: the device tests, one chapter on the GPU, and a
CPU-against-GPU speed ratio measured side by side in this run.

    .venv/bin/python benchmarks/gpu_check.py            # needs a CUDA GPU
    .venv/bin/python benchmarks/gpu_check.py --dataset Amazon-Computers --cpu-threads 2

``--cpu-threads 2`` times the CPU side on two threads, as on the 2-core machine the book's
timings come from; ``--fp32-epochs`` shortens the FP32 timing on a large graph.

1. ``pytest tests/test_device.py tests/test_finetune.py`` with ``SGQUANT_DEVICE=cuda``
   (the CPU/CUDA agreement test runs only where a GPU is seen).
2. Chapter 3 in the ``quick`` profile on Cora with ``--device cuda``.
3. The same work on ``cpu`` and on ``cuda``, alternating, median of repeats: FP32 training
   (``--fp32-epochs``, 100 by default) and one fine-tune (10 epochs, uniform 4 bits) of GCN and GAT, and a packed
   inference pass. Prints seconds and the ratio CPU / GPU.

Exits non-zero, with one line saying why, when torch sees no GPU or a step fails; a bad
argument is refused first (one line naming it, exit status 2), with or without a GPU.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from sgquant.checks import check_int

from _args import ScriptParser, check_dataset, run_script  # benchmarks/_args.py

REPO = Path(__file__).resolve().parents[1]


def _step(title: str, cmd: list[str], env: dict) -> float:
    print(f"== {title}: {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"gpu_check: {title} failed (exit {proc.returncode})")
    print(f"   {title}: {seconds:.1f} s", flush=True)
    return seconds


def _timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed_ratios(dataset: str, repeats: int, fp32_epochs: int = 100) -> None:
    from sgquant.assignment import BitAssignment
    from sgquant.data import load_dataset
    from sgquant.models import build_model
    from sgquant.packed import packed_forward
    from sgquant.train import finetune, train_model

    base = load_dataset(dataset)
    print(f"== speed, {dataset} ({base.num_nodes} nodes, {base.edge_index.size(1)} edges): "
          f"median of {repeats}, CPU {torch.get_num_threads()} threads vs "
          f"{torch.cuda.get_device_name(0)}")
    print(f"   {'work':32s} {'cpu s':>9s} {'cuda s':>9s} {'cpu/cuda':>9s}")
    for name, kw in (("gcn", {}), ("gat", {"hidden": 8, "heads": 8})):
        rows = {}
        for device in ("cpu", "cuda"):
            data = base.to(device)
            torch.manual_seed(0)
            net = build_model(name, data.num_features, int(data.y.max()) + 1, **kw).to(device)
            fp32 = train_model(net, data, epochs=5, seed=0).state_dict  # warm-up, weights
            a = BitAssignment.uniform(4, net.num_layers)
            rows.setdefault(f"FP32 training, {fp32_epochs} epochs", {})[device] = _timed(
                lambda: train_model(net, data, epochs=fp32_epochs, patience=None, seed=0),
                repeats)
            rows.setdefault("fine-tune, 10 epochs, 4 bits", {})[device] = _timed(
                lambda: finetune(net, data, a, fp32, epochs=10, seed=0), repeats)
            net.load_state_dict(fp32)
            rows.setdefault("packed inference, 4 bits", {})[device] = _timed(
                lambda: packed_forward(net.eval(), data, a, chunk_size=4096), repeats)
        for work, t in rows.items():
            print(f"   {name + ': ' + work:32s} {t['cpu']:9.3f} {t['cuda']:9.3f} "
                  f"{t['cpu'] / t['cuda']:8.1f}x", flush=True)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The options, each checked before the GPU is looked for (``_args``): counts >= 1,
    the dataset registered and present."""
    parser = ScriptParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="Cora")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fp32-epochs", type=int, default=100)
    parser.add_argument("--cpu-threads", type=int, default=None,
                        help="torch threads for the CPU side of the speed ratio "
                             "(default: torch's choice)")
    args = parser.parse_args(argv)
    args.repeats = check_int(args.repeats, "--repeats", minimum=1)
    args.fp32_epochs = check_int(args.fp32_epochs, "--fp32-epochs", minimum=1)
    if args.cpu_threads is not None:
        args.cpu_threads = check_int(args.cpu_threads, "--cpu-threads", minimum=1)
    args.dataset = check_dataset(args.dataset, "--dataset")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("gpu_check: not run: no GPU (torch.cuda.is_available() is False)")
    env = {**os.environ, "SGQUANT_DEVICE": "cuda"}
    start = time.perf_counter()
    _step("device tests", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_device.py", "tests/test_finetune.py"], env)
    with tempfile.TemporaryDirectory() as tmp:
        _step("chapter 3 on the GPU", [sys.executable, "-m", "sgquant.cli", "run",
                                       "notebooks/03_overall.ipynb", "--device", "cuda",
                                       "-p", "profile", "quick", "-p", "dataset", "Cora",
                                       "-p", "model", "gcn", "-o", f"{tmp}/03.ipynb",
                                       "--no-progress"],
              {**env, "SGQUANT_RESULTS": f"{tmp}/results"})
    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    speed_ratios(args.dataset, args.repeats, args.fp32_epochs)
    print(f"gpu_check: passed in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
