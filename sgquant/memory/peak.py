r"""Measured memory: what an inference pass really holds (not the counted figure).

Three instruments, each with its blind spot, reported side by side:

* RSS high-water mark of this process (``/proc/self/status`` VmHWM, reset through
  ``/proc/self/clear_refs``): sees every allocation (torch, NumPy, Python) at page
  granularity; the heap is trimmed first so that freed-but-resident memory is not
  silently reused. Linux only; elsewhere ``ru_maxrss`` (never reset) is used.
* torch's allocation events (profiler with ``profile_memory=True``; torch 2.x has no
  CPU allocator statistics API): torch tensors only, not NumPy buffers.
* ``tracemalloc``: Python objects and NumPy buffers only; it does *not* see torch
  tensors.

:func:`run_isolated` runs a job in a fresh interpreter, so the peak is not blurred by
what the parent process did before; ``MALLOC_MMAP_THRESHOLD_`` makes freed blocks go
back to the system at once.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import importlib
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

__all__ = ["rss_bytes", "peak_rss_bytes", "reset_peak_rss", "trim_heap", "fix_mmap_threshold",
           "PassMemory", "cuda_peak", "torch_allocation_peak", "python_allocation_peak", "measure_pass",
           "run_isolated", "isolated_main"]

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"
_RESULT_TAG = "SGQUANT_ISOLATED_RESULT "


def _status_kb(field_name: str) -> Optional[int]:
    try:
        with open(_STATUS) as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> int:
    """Resident set size of this process now (bytes; 0 if unknown)."""
    kb = _status_kb("VmRSS")
    return 1024 * kb if kb is not None else 0


def peak_rss_bytes() -> int:
    """High-water mark of the resident set size (VmHWM, else ``ru_maxrss``), bytes."""
    kb = _status_kb("VmHWM")
    if kb is None:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return 1024 * kb


def reset_peak_rss() -> bool:
    """Reset the RSS high-water mark to the current RSS (Linux >= 4.0); ``False`` if
    the kernel does not allow it (then peaks include everything before)."""
    try:
        with open(_CLEAR_REFS, "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def trim_heap() -> None:
    """Collect garbage and return free heap pages to the system (glibc ``malloc_trim``)."""
    gc.collect()
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    except OSError:
        pass


_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
_MMAP_THRESHOLD_BYTES = 65536


def fix_mmap_threshold() -> bool:
    """Make glibc serve blocks >= 64 KiB with ``mmap`` from now on (``mallopt``), so
    that a freed tensor leaves the RSS at once and a new one is counted again instead
    of silently reusing resident heap pages. Process-wide and lasting; large
    allocations get a little slower. ``False`` where glibc is not available."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is None or not hasattr(libc, "mallopt"):
            return False
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES))
    except OSError:
        return False


@dataclass
class PassMemory:
    """Memory of one call: ``pass_peak_bytes`` = RSS high-water mark during the call
    minus the RSS just before it (``reset_ok``: the mark could be reset, else it is
    the lifetime peak); ``torch_peak_bytes`` / ``numpy_peak_bytes`` (optional) are the
    allocator-level peaks of torch tensors and of NumPy/Python buffers."""

    seconds: float
    rss_before: int
    rss_peak: int
    reset_ok: bool
    torch_peak_bytes: Optional[int] = None
    numpy_peak_bytes: Optional[int] = None
    #: on a GPU: the CUDA allocator's peak during the call above what it held before
    cuda_peak_bytes: Optional[int] = None

    @property
    def pass_peak_bytes(self) -> int:
        """The pass's peak: the CUDA allocator's on a GPU, else the RSS growth."""
        if self.cuda_peak_bytes is not None:
            return self.cuda_peak_bytes
        return max(self.rss_peak - self.rss_before, 0)


class cuda_peak:
    """Context manager: the CUDA caching allocator's peak of allocated bytes on ``device``
    during the block, above what was allocated when it began (``.bytes`` afterwards;
    ``None`` on a CPU device). Uses ``torch.cuda.reset_peak_memory_stats`` /
    ``max_memory_allocated``, synchronising before and after."""

    def __init__(self, device: "torch.device | str | None") -> None:
        self.device = None if device is None else torch.device(device)
        self.bytes: Optional[int] = None
        self._before = 0

    def __enter__(self) -> "cuda_peak":
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._before = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = max(torch.cuda.max_memory_allocated(self.device) - self._before, 0)


def torch_allocation_peak(fn: Callable[[], Any]) -> tuple[Any, Optional[int]]:
    """Run ``fn`` under torch's profiler and return its result and the peak of torch
    CPU allocations made during the call (bytes above the start), ``None`` if the
    profiler's memory events are not available."""
    try:
        from torch.profiler import ProfilerActivity, profile
    except ImportError:  # pragma: no cover
        return fn(), None
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    try:
        events = prof.profiler.kineto_results.events()
        mem = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    except Exception:  # private API moved: report nothing rather than a wrong number
        return result, None
    live = peak = 0
    for _, nbytes in mem:
        live += nbytes
        peak = max(peak, live)
    return result, peak


def python_allocation_peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``fn`` under :mod:`tracemalloc`: peak bytes of Python and NumPy allocations
    above the start (torch tensors are not traced)."""
    was = tracemalloc.is_tracing()
    if not was:
        tracemalloc.start()
    tracemalloc.reset_peak()
    start, _ = tracemalloc.get_traced_memory()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was:
            tracemalloc.stop()
    return result, max(peak - start, 0)


def measure_pass(fn: Callable[[], Any], *, warmup: bool = True, allocators: bool = False,
                 device: "torch.device | str | None" = None) -> tuple[Any, PassMemory]:
    """Run ``fn`` and measure its peak memory (see :class:`PassMemory`).

    ``warmup`` runs ``fn`` once first (BLAS buffers, lazy imports); ``allocators``
    adds two more runs, under torch's profiler and under tracemalloc. Calls
    :func:`fix_mmap_threshold` (process-wide) so that the RSS follows live memory;
    :func:`run_isolated` gives cleaner figures still. On a CUDA ``device`` the peak is
    the CUDA allocator's (:class:`cuda_peak`).
    """
    fix_mmap_threshold()
    if warmup:
        fn()
    trim_heap()
    before = rss_bytes()
    ok = reset_peak_rss()
    with cuda_peak(device) as gpu:
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
    peak = peak_rss_bytes()
    record = PassMemory(seconds, before, peak, ok, cuda_peak_bytes=gpu.bytes)
    if allocators:
        trim_heap()
        _, record.torch_peak_bytes = torch_allocation_peak(fn)
        trim_heap()
        _, record.numpy_peak_bytes = python_allocation_peak(fn)
    return result, record


def run_isolated(target: str, kwargs: dict, *, timeout: float = 600.0, threads: int = 1,
                 env: Optional[dict] = None) -> dict:
    """Measure a job in a fresh Python process and return its JSON record.

    ``target`` is ``"module:function"``; ``function(**kwargs)`` returns a dict with
    ``load`` (callable returning what the pass needs), ``run`` (callable taking it) and
    optionally ``warmup`` (callable) and ``info`` (dict). The child imports, warms up,
    records ``rss_base``, loads, trims the heap, resets the high-water mark, runs and
    reports ``rss_base``, ``rss_ready`` (after loading), ``rss_peak``,
    ``pass_peak_bytes = rss_peak - rss_ready``, ``total_bytes = rss_peak - rss_base``
    (everything the inference holds: graph, weights, features, temporaries),
    ``ru_maxrss_bytes`` (lifetime, from :func:`resource.getrusage`) and ``seconds``.
    Raises :class:`RuntimeError` with the child's stderr if it fails or times out.
    """
    if ":" not in target:
        raise ValueError(f"target must be 'module:function', got {target!r}")
    payload = json.dumps({"target": target, "kwargs": kwargs, "threads": int(threads)})
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("MALLOC_MMAP_THRESHOLD_", str(_MMAP_THRESHOLD_BYTES))
    child_env.setdefault("OMP_NUM_THREADS", str(threads))
    code = "import sys; from sgquant.memory.peak import isolated_main; isolated_main(sys.stdin.read())"
    try:
        proc = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True,
                              text=True, timeout=timeout, env=child_env)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"isolated job {target} timed out after {timeout} s") from exc
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_RESULT_TAG):
            return json.loads(line[len(_RESULT_TAG):])
    tail = (proc.stderr or "")[-2000:]
    raise RuntimeError(f"isolated job {target} failed (exit {proc.returncode}): {tail}")


def isolated_main(payload: str) -> None:
    """Child side of :func:`run_isolated` (reads the job as JSON from ``payload``)."""
    spec = json.loads(payload)
    torch.set_num_threads(int(spec.get("threads", 1)))
    module_name, func_name = spec["target"].split(":", 1)
    job = getattr(importlib.import_module(module_name), func_name)(**spec["kwargs"])
    if job.get("warmup") is not None:
        job["warmup"]()
    trim_heap()
    rss_base = rss_bytes()
    loaded = job["load"]()
    trim_heap()
    rss_ready = rss_bytes()
    ok = reset_peak_rss()
    start = time.perf_counter()
    out = job["run"](loaded)
    seconds = time.perf_counter() - start
    peak = peak_rss_bytes()
    record = {**job.get("info", {}), **(out if isinstance(out, dict) else {}),
              "rss_base": rss_base, "rss_ready": rss_ready, "rss_peak": peak,
              "reset_ok": ok, "pass_peak_bytes": max(peak - rss_ready, 0),
              "total_bytes": max(peak - rss_base, 0),
              "ru_maxrss_bytes": 1024 * resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              "seconds": seconds}
    print(_RESULT_TAG + json.dumps(record, default=float), flush=True)
