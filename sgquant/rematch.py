"""Chapter 6's experiments, kept importable from their old place: they live in
:mod:`sgquant.chapters.packed_inference` (packed bytes, peak memory, synthetic
graphs) and :mod:`sgquant.chapters.rematching` (rounding and range)."""
from __future__ import annotations

from .chapters.packed_inference import MODES, packed_vs_analytic, peak_job, peak_memory_table
from .synthetic import SYNTHETIC, synthetic_graph
from .chapters.rematching import ROUNDING_OPTIONS, TARGETS, rounding_table

__all__ = ["SYNTHETIC", "MODES", "ROUNDING_OPTIONS", "TARGETS", "synthetic_graph",
           "packed_vs_analytic", "peak_memory_table", "rounding_table", "peak_job"]
