"""The time of one inference pass, FP32 against packed against coded storage, measured
side by side in this process on one thread (:func:`inference_times`; the timing loop
alone: :func:`side_by_side`). Chapter 7 (:mod:`sgquant.chapters.below_one_bit`) and
``benchmarks/coding.py`` report them.
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Callable, Mapping, Optional, Sequence, Union

import pandas as pd
import torch
from torch import Tensor
from torch_geometric.data import Data

from .assignment import BitAssignment, as_assignment
from .checks import check_int
from .degree import DegreeBuckets
from .measure import single_thread
from .models import QuantGNN
from .packed import PackedRunner
from .packed.baselines import CHUNK_SIZE, EDGE_CHUNK_SIZE

__all__ = ["TIMED_CODECS", "side_by_side", "inference_times"]

#: Codecs timed by :func:`inference_times` besides FP32.
TIMED_CODECS: tuple[str, ...] = ("packed", "sparse", "entropy", "auto")


def side_by_side(passes: Mapping[str, Callable[[], object]], repeats: int
                 ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and thread CPU seconds of each of ``passes``, on one thread: each
    runs once to warm up, then every repeat runs each pass once, in turn, so that what
    else the machine does falls on all of them alike. ``(wall, cpu)``: ``repeats``
    times per pass."""
    wall: dict[str, list[float]] = {k: [] for k in passes}
    cpu: dict[str, list[float]] = {k: [] for k in passes}
    with single_thread():
        for fn in passes.values():
            fn()  # warm-up
        for _ in range(repeats):
            for key, fn in passes.items():
                start, start_cpu = time.perf_counter(), time.thread_time()
                fn()
                wall[key].append(time.perf_counter() - start)
                cpu[key].append(time.thread_time() - start_cpu)
    return wall, cpu


def inference_times(net: QuantGNN, data: Data, assignment: Union[BitAssignment, dict, str],
                    buckets: Optional[DegreeBuckets] = None, *,
                    codecs: Sequence[str] = TIMED_CODECS, repeats: int = 9,
                    chunk_size: int = CHUNK_SIZE,
                    edge_chunk_size: int = EDGE_CHUNK_SIZE) -> pd.DataFrame:
    """Seconds of one inference pass, FP32 (the PyG model) and packed with each of
    ``codecs``, measured side by side in this process on one thread
    (:func:`side_by_side`): the median over ``repeats`` is reported (``seconds``, wall
    clock), with ``ratio_vs_fp32`` and ``ratio_vs_packed``, and the same from the
    thread's CPU time (``cpu_seconds``, ``cpu_ratio_*``: what the pass computed, less
    sensitive to other processes on a shared machine). The input is packed (or coded)
    before timing, as it is stored; hidden features and coefficients are quantized and
    coded inside the pass."""
    repeats = check_int(repeats, "repeats", minimum=1)
    asg = as_assignment(assignment)
    bk = buckets if asg.num_buckets > 1 else None
    net.eval()
    x, ei = data.x, data.edge_index
    passes, stored = {}, {}

    def fp32() -> Tensor:
        net.reset_cache()
        with torch.no_grad():
            return net(x, ei)

    passes["fp32"], stored["fp32"] = fp32, 4 * x.numel()
    for codec in codecs:
        runner = PackedRunner(net, asg, buckets=bk, chunk_size=chunk_size,
                              edge_chunk_size=edge_chunk_size, codec=codec)
        xp = runner.pack_input(x, ei)
        passes[codec] = (lambda runner=runner, xp=xp: runner.run(xp, ei).logits)
        stored[codec] = xp.nbytes
    net.set_bits(None)
    wall, cpu = side_by_side(passes, repeats)
    net.reset_cache()
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    return pd.DataFrame([{"mode": k, "seconds": med[k], "min_seconds": min(wall[k]),
                          "cpu_seconds": med_cpu[k],
                          "ratio_vs_fp32": med[k] / med["fp32"],
                          "ratio_vs_packed": med[k] / med.get("packed", math.nan),
                          "cpu_ratio_vs_fp32": med_cpu[k] / med_cpu["fp32"],
                          "cpu_ratio_vs_packed": med_cpu[k] / med_cpu.get("packed", math.nan),
                          "input_bytes": stored[k], "repeats": repeats} for k in passes])
