"""sgquant: a reproducible implementation of SGQuant (Feng et al., ICTAI 2020).

Memory-saving quantization of graph neural network *features* (node embeddings
and attention values) at component, topology (degree bucket) and layer
granularity, with an XGBoost cost-model search for the bit assignment.
"""
from .assignment import BitAssignment
from .quantize import fake_quantize, linear_quantize, pack_bits, unpack_bits

__version__ = "0.1.0"

__all__ = ["BitAssignment", "fake_quantize", "linear_quantize", "pack_bits", "unpack_bits",
           "__version__"]
