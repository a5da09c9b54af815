"""Where tensors live: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

One place resolves the ``--device`` option, the ``device`` notebook parameter and the
``SGQUANT_DEVICE`` environment variable (the default when neither is given):

* ``auto`` (the default): the first GPU when torch sees one, else the CPU;
* ``cpu``; ``cuda`` (the current GPU) or ``cuda:N``: that device, and a clear error
  when it does not exist - never a silent CPU run.

Results do not depend on the device beyond float tolerance, so cache keys never
include it; the run tables show which device ran (:func:`describe_device`).
"""
from __future__ import annotations

import os
import re
from typing import Optional, Union

import torch

__all__ = ["DEVICE_ENV", "resolve_device", "describe_device", "check_device_spec"]

#: Environment variable giving the default device.
DEVICE_ENV = "SGQUANT_DEVICE"

_SPEC = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


def check_device_spec(spec: object) -> str:
    """``spec`` normalised (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``) if it has one of
    those forms; else ``ValueError`` naming it. Nothing is probed."""
    text = str(spec).strip().lower() if isinstance(spec, (str, torch.device)) else None
    m = _SPEC.match(text) if text is not None else None
    if m is None or (m.group(2) is not None and m.group(1) != "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
    return text


def resolve_device(spec: Union[str, torch.device, None] = None) -> torch.device:
    """The :class:`torch.device` of ``spec`` (``None``: ``$SGQUANT_DEVICE``, else ``auto``).

    Raises ``ValueError`` when a GPU is asked for and torch sees none, or the index does
    not exist (naming how many GPUs there are).
    """
    if spec is None:
        spec = os.environ.get(DEVICE_ENV) or "auto"
    text = check_device_spec(spec)
    if text == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() \
            else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        source = f" (from ${DEVICE_ENV})" if spec == os.environ.get(DEVICE_ENV) else ""
        raise ValueError(f"device {text!r}{source} was asked for, but torch sees no CUDA GPU "
                         f"here (torch {torch.__version__}, built "
                         f"{'with' if torch.backends.cuda.is_built() else 'without'} CUDA); "
                         "use --device cpu or auto")
    index = torch.cuda.current_device() if text == "cuda" else int(text.split(":")[1])
    count = torch.cuda.device_count()
    if index >= count:
        raise ValueError(f"device {text!r} does not exist: torch sees {count} GPU(s), "
                         f"cuda:0..cuda:{count - 1}")
    return torch.device("cuda", index)


def describe_device(device: Optional[torch.device]) -> str:
    """A readable name for run tables: ``cpu (N threads)`` or ``cuda:0 (NVIDIA H100 ...)``."""
    device = torch.device("cpu") if device is None else torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"
