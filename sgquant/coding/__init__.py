r"""Coded storage: quantized features below one bit per value, losslessly.

SGQuant stores a group of :math:`n` codes of :math:`b` bits in
:math:`\lceil n b / 8 \rceil` bytes (:class:`~sgquant.packing.PackedTensor`). When one
code dominates a group (a binary bag-of-words input is ~99% zeros) or the codes are
far from uniform, a lossless code of the codes takes fewer bytes and decodes to the
very same codes, hence the same floats and the same logits. A group is stored with
one of :data:`CODECS`:

* ``packed``: fixed-width bit packing (today's format);
* ``sparse``: the positions of the non-dominant codes as fixed-width run symbols, and
  their codes as indices into the group's code table (:mod:`.codecs`);
* ``entropy``: ANS coding with an order-0 model of the group's histogram, over the codes
  or over the run form (:mod:`.codecs`, :mod:`.model`);
* ``auto``: the smallest of the three, measured, per group.

Coded groups are cut into independently decodable blocks of about
:data:`DEFAULT_BLOCK_ELEMENTS` elements (whole rows), each with a CRC32, behind a block
index (:class:`CodedTensor`); inference decodes a block just before the chunk of rows
that consumes it.

**Why ``constriction`` (ANS) and not ``zstandard``.** Measured on the groups of a
2-layer GCN at 1-bit input / 8-bit hidden / 8-bit attention (blocks of 256 to 1024
rows): ANS with the group's histogram reaches 1.00x the codes' empirical order-0
entropy on Cora's input (zstd level 19: 1.28-1.32x, level 3: 1.7x), 1.00x on the
hidden features (zstd-19: 1.00-1.02x) and 1.00-1.02x on the edge coefficients (zstd-19:
1.02-1.17x). zstd decodes 10-50x faster, but only on the byte stream of the fixed-width
codes; coding the *run form* instead (one symbol per non-dominant code, not one per
element) cuts what ANS decodes ~20x on a bag-of-words input, which brings its decode
time in line with fixed-width rematching. So the entropy codec is ANS
(``constriction.stream.stack.AnsCoder`` with a ``Categorical`` model, ``perfect=False``),
and zstd is not used. ``benchmarks/coding.py`` reprints this comparison.
"""
from .codecs import BACKENDS, BLOCK_CODECS, MODES, Plan
from .model import SymbolModel, entropy_bits
from .scan import DEFAULT_BLOCK_ELEMENTS, GroupCodes, block_rows_for
from .tensor import CODECS, CodedTensor, check_codec, encode_codes, encode_group

__all__ = ["CODECS", "BACKENDS", "BLOCK_CODECS", "MODES", "DEFAULT_BLOCK_ELEMENTS", "CodedTensor",
           "GroupCodes", "Plan", "SymbolModel", "block_rows_for", "check_codec",
           "encode_codes", "encode_group", "entropy_bits", "code_entropy_bits"]


def code_entropy_bits(packed) -> float:
    r"""Empirical order-0 entropy of the codes of a packed group, in bits
    (:math:`n H`; the bound of symbol-by-symbol coding, model excluded)."""
    scan = GroupCodes(packed, block_rows_for(packed.row_numel))
    return entropy_bits(scan.histogram)
