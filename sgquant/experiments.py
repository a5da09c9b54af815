"""The book's experiments, kept importable from their old place: each chapter's
functions now live in its module of :mod:`sgquant.chapters` (one per notebook),
what they share in :mod:`sgquant.chapters.common`, the paper's numbers in
:mod:`sgquant.paper`."""
from __future__ import annotations

from .chapters.autobit import (AUTOBIT_METHODS, autobit_curves, autobit_latency, autobit_runs,
                               autobit_summary, measurement_seconds, reading_autobit)
from .chapters.common import (NO_FILES, NOT_AVAILABLE, NOT_IN_PROFILE, check_parameters,
                              default_workers, mean_std, measurement_runner, resolve_datasets,
                              resolve_models, resolve_seeds, run_info)
from .chapters.granularity import (GRANULARITIES, granularity_comparison, granularity_configs,
                                   granularity_runs, pareto_front, reading_granularity,
                                   sensitivity_claims, sensitivity_configs, sensitivity_runs)
from .chapters.memory_breakdown import layout_from_sizes, memory_breakdown, reading_memory
from .chapters.overall import overall_runs, overall_table, reading_overall
from .chapters.rematching import reading_rematching, rematching_tables, rounding_summary
from .chapters.setup import architecture_table, dataset_table, reading_setup
from .data import available_datasets
from .paper import PAPER_CLAIMS, PAPER_DIR, paper_table
from .plots import GRANULARITY_LABELS
from .profiles import get_profile

_layout_from_sizes = layout_from_sizes  # the name tests used before the move

__all__ = [
    "GRANULARITIES", "GRANULARITY_LABELS", "PAPER_CLAIMS", "NOT_AVAILABLE", "NO_FILES",
    "NOT_IN_PROFILE", "PAPER_DIR", "paper_table", "default_workers", "measurement_runner",
    "resolve_datasets", "resolve_models", "resolve_seeds", "check_parameters",
    "memory_breakdown", "architecture_table", "dataset_table",
    "overall_runs", "overall_table",
    "granularity_configs", "granularity_runs", "pareto_front", "granularity_comparison",
    "sensitivity_configs", "sensitivity_runs", "sensitivity_claims",
    "AUTOBIT_METHODS", "autobit_runs", "autobit_curves", "autobit_summary", "autobit_latency",
    "measurement_seconds",
    "rematching_tables", "rounding_summary", "run_info", "mean_std",
    "reading_memory", "reading_setup", "reading_overall", "reading_granularity",
    "reading_autobit", "reading_rematching", "available_datasets", "get_profile",
]
