"""Memory: counted (:mod:`.counted`, the one definition of feature memory), measured
(:mod:`.measured`, what a pass really holds) and estimated (:mod:`.estimate`, what a
training run needs, checked before it starts). Everything is importable from here."""
from .counted import (GROUP_OVERHEAD_BYTES, MB, FeatureLayout, LayerLayout, MemoryReport,
                      average_bits, batch_memory, edges_aggregated, feature_layout,
                      feature_memory, model_memory)
from .estimate import (InsufficientMemoryError, TrainingMemory, check_training_fits,
                       layout_bound, machine_memory, training_memory)
from .peak import (PassMemory, cuda_peak, fix_mmap_threshold, isolated_main, measure_pass,
                       peak_rss_bytes, python_allocation_peak, reset_peak_rss, rss_bytes,
                       run_isolated, torch_allocation_peak, trim_heap)

__all__ = ["GROUP_OVERHEAD_BYTES", "MB", "FeatureLayout", "LayerLayout", "MemoryReport",
           "average_bits", "batch_memory", "edges_aggregated", "feature_layout", "feature_memory",
           "model_memory", "PassMemory", "cuda_peak", "fix_mmap_threshold", "isolated_main", "measure_pass",
           "peak_rss_bytes", "python_allocation_peak", "reset_peak_rss", "rss_bytes",
           "run_isolated", "torch_allocation_peak", "trim_heap", "InsufficientMemoryError",
           "TrainingMemory", "check_training_fits", "layout_bound", "machine_memory",
           "training_memory"]
