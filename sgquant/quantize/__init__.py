r"""Linear quantization of GNN features (SGQuant, Feng et al., ICTAI 2020).

A tensor :math:`\mathbf{x}` quantized at :math:`b` bits (:math:`1 \le b \le 16`) is

.. math::
    s = \frac{\max - \min}{2^b - 1}, \qquad
    q = \mathrm{clamp}\left(\left\lfloor \frac{\mathbf{x} - \min}{s}
        \right\rfloor, 0, 2^b - 1\right), \qquad
    \mathbf{x}' = s \cdot q + \min

("rematching" is the last step). :math:`b = 32` means "kept in float32".

As in ``torch.ao.quantization``, *which range* and *which codes* are separate, public
steps, used alike by fake quantization (:func:`fake_quantize`, training) and by packed
inference (:mod:`sgquant.packed`), so both give the same codes for the same floats:

* :mod:`.ranges`: the range rules, one module each (the paper's min/max, a clipped
  percentile range, the clipped range where it lowers the squared error ...): a rule
  object's ``choose`` gives a group's :math:`(\min, \max)`; :class:`RangeObserver` /
  :func:`observe_range` (:mod:`.observe`) observe min/max and percentiles;
* :func:`codes` (:mod:`.codes`): the integral codes and the scale for a given range;
* :class:`QuantOptions` (:mod:`.options`): the one configuration object (rounding, range
  rule, per-kind options); ``options.fake_quantize(x, bits)`` and
  :mod:`.functional`'s functions of the option fields apply it.

All arithmetic is float32. The normalised code is computed as
:math:`(\mathbf{x} - \min) / (\max - \min) \cdot (2^b - 1)` (mathematically equal to
:math:`(\mathbf{x} - \min) / s`), so that :math:`\max` maps to exactly :math:`2^b - 1`
and :math:`\min` to exactly :math:`0` in floating point. A constant tensor gets code 0
and scale 0 (no division by zero).
"""
from ..bitwidth import ALLOWED_BITS, FP32_BITS, GROUP_OVERHEAD_BYTES, check_bits
from ..bitpack import PackedTensor, QuantizedTensor, pack_bits, unpack_bits
from .checks import ROUNDINGS, check_clip_percentile, check_rounding
from .codes import codes
from .functional import (fake_quantize, linear_quantize, quant_range, quantization_error,
                         select_range)
from .observe import RangeObserver, observe_range
from .options import POINT_KINDS, QuantOptions
from .ranges import CLIP_RULES, RANGE_RULES, RangeChoice, RangeRule, check_clip_rule

__all__ = [
    "ALLOWED_BITS", "FP32_BITS", "GROUP_OVERHEAD_BYTES", "ROUNDINGS", "POINT_KINDS",
    "check_bits", "check_rounding", "check_clip_percentile", "CLIP_RULES", "check_clip_rule",
    "RANGE_RULES", "RangeRule", "RangeChoice", "select_range",
    "QuantOptions", "RangeObserver", "observe_range", "codes",
    "QuantizedTensor", "PackedTensor", "quant_range", "linear_quantize", "fake_quantize",
    "pack_bits", "unpack_bits", "quantization_error",
]
