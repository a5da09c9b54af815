r"""Coded storage: quantized features below one bit per value, losslessly.

SGQuant stores a group of :math:`n` codes of :math:`b` bits in
:math:`\lceil n b / 8 \rceil` bytes (:class:`~sgquant.bitpack.PackedTensor`). When one
code dominates a group (a binary bag-of-words input is ~99% zeros) or the codes are
far from uniform, a lossless code of the codes takes fewer bytes and decodes to the
very same codes, hence the same floats and the same logits. A group is stored with
one of :data:`CODECS`:

* ``packed``: fixed-width bit packing (today's format);
* ``sparse``: the positions of the non-dominant codes as fixed-width run symbols, and
  their codes as indices into the group's code table (:mod:`.codecs`);
* ``entropy``: an entropy coder over the codes or over their run form (:mod:`.codecs`);
* ``auto``: the smallest of the three, per group.

Coded groups are cut into independently decodable blocks of about
:data:`DEFAULT_BLOCK_ELEMENTS` elements (whole rows), each with a CRC32, behind a block
index (:class:`CodedTensor`); inference decodes a block just before the chunk of rows
that consumes it.

**Which entropy coder.** Measured on the groups of a 2-layer GCN on Cora (1-bit input,
8-bit hidden features and edge coefficients; ``benchmarks/coding.py`` reprints this),
against the codes' order-0 entropy :math:`H`:

* ``constriction``'s ANS with the group's histogram reaches :math:`1.00\,H` on every
  group, but decodes one symbol per element at ~20-60 ns each: 2.2 ms for the 86,656
  hidden codes. Over the *run form* of the bag-of-words input (one symbol per non-zero
  instead of one per element, ~70x fewer) it stays at 1.00-1.03 H and decodes the
  3.9 M input codes in ~2.5 ms.
* ``zstandard`` (level 3) decodes 30-50x faster (0.06 ms for the hidden codes) and is
  within 1-2% of :math:`H` on 8-bit hidden features and edge coefficients (below
  :math:`H` on the coefficients and on 2-bit groups: LZ matches find repeats that an
  order-0 model cannot), but 10% above :math:`H` on the input's run form and 13-16%
  above on 4-bit hidden features.

So neither wins everywhere: the entropy codec measures zstd, estimates ANS by its ideal
code length, and keeps zstd when it is within :data:`~sgquant.coding.codecs.TOLERANCE`
(2%) of the smallest (it decodes far faster), ANS otherwise.
"""
from .codecs import BACKENDS, BLOCK_CODECS, MODES, Plan
from .histogram import SymbolModel, entropy_bits
from .scan import DEFAULT_BLOCK_ELEMENTS, GroupCodes, block_rows_for, code_entropy_bits
from .tensor import CODECS, CodedTensor, check_codec, encode_codes, encode_group

__all__ = ["CODECS", "BACKENDS", "BLOCK_CODECS", "MODES", "DEFAULT_BLOCK_ELEMENTS",
           "CodedTensor", "GroupCodes", "Plan", "SymbolModel", "block_rows_for", "check_codec",
           "code_entropy_bits", "encode_codes", "encode_group", "entropy_bits"]
