r"""One quantized group read block by block: its codes, their histogram, the dominant
code and the run form (what every codec plans from).

A group of :math:`N` rows of :math:`r` elements is cut into blocks of :math:`R` rows
(the last one shorter), :math:`R` a multiple of 8 so that each block starts on a whole
byte of the bit-packed stream at any width; every block is coded on its own.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..checks import check_int
from ..bitpack import PackedTensor
from .histogram import entropy_bits
from .streams import block_codes, gaps_of

__all__ = ["DEFAULT_BLOCK_ELEMENTS", "block_rows_for", "GroupCodes", "code_entropy_bits"]

#: Elements per coded block, about (rows are never split: see :func:`block_rows_for`).
DEFAULT_BLOCK_ELEMENTS: int = 1 << 16


def block_rows_for(per_row: int, block_elements: int = DEFAULT_BLOCK_ELEMENTS) -> int:
    r"""Rows per block: :math:`R = 8 \lceil \mathrm{elements} / (8 r) \rceil` (at least 8),
    so a block holds about ``block_elements`` elements and starts on a whole byte."""
    block_elements = check_int(block_elements, "block_elements", minimum=1)
    rows = -(-block_elements // max(per_row, 1))
    return max(8, -(-rows // 8) * 8)


class GroupCodes:
    """The codes of a :class:`~sgquant.bitpack.PackedTensor`, block by block.

    :attr:`histogram` (one pass) and :meth:`runs` (gaps and values of the elements that
    differ from :attr:`dominant`, one more pass, kept) are computed when first asked for.
    """

    def __init__(self, packed: PackedTensor, block_rows: int) -> None:
        if not packed.shape:
            raise ValueError("coding needs a tensor with at least one dimension")
        self.packed = packed
        self.bits = packed.bits
        self.num_rows = int(packed.shape[0])
        self.per_row = math.prod(packed.shape[1:])
        self.block_rows = block_rows
        self.num_blocks = -(-self.num_rows // block_rows)
        self._stream = packed.data.detach().cpu().numpy()
        self._hist: Optional[np.ndarray] = None
        self._runs: Optional[list[tuple[np.ndarray, np.ndarray]]] = None
        self._gap_hist: Optional[np.ndarray] = None

    @property
    def numel(self) -> int:
        return self.num_rows * self.per_row

    def block_numel(self, i: int) -> int:
        r0 = i * self.block_rows
        return (min(r0 + self.block_rows, self.num_rows) - r0) * self.per_row

    def codes(self, i: int) -> np.ndarray:
        """Codes of block ``i`` (flattened rows)."""
        start = i * self.block_rows * self.per_row
        return block_codes(self._stream, self.bits, start, self.block_numel(i))

    @property
    def histogram(self) -> np.ndarray:
        """How often each code :math:`0 .. 2^b - 1` occurs in the group."""
        if self._hist is None:
            hist = np.zeros(2**self.bits, dtype=np.int64)
            for i in range(self.num_blocks):
                hist += np.bincount(self.codes(i), minlength=2**self.bits)
            self._hist = hist
        return self._hist

    @property
    def dominant(self) -> int:
        """The most frequent code (the smallest one on a tie)."""
        return int(np.argmax(self.histogram))

    @property
    def dominant_share(self) -> float:
        return float(self.histogram[self.dominant]) / max(self.numel, 1)

    def runs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per block: gaps and codes of the elements that are not :attr:`dominant`."""
        if self._runs is None:
            z = self.dominant
            self._runs = [gaps_of(self.codes(i), z) for i in range(self.num_blocks)]
        return self._runs

    def gap_histogram(self) -> np.ndarray:
        """How many gaps (over all blocks) have each length."""
        if self._gap_hist is None:
            hist = np.zeros(1, dtype=np.int64)
            for gaps, _ in self.runs():
                h = np.bincount(gaps)
                if h.size > hist.size:
                    h[:hist.size] += hist
                    hist = h
                else:
                    hist[:h.size] += h
            self._gap_hist = hist if hist.sum() else np.zeros(0, dtype=np.int64)
        return self._gap_hist

    def value_histogram(self) -> np.ndarray:
        """Histogram of the codes that are not :attr:`dominant`."""
        hist = self.histogram.copy()
        hist[self.dominant] = 0
        return hist


def code_entropy_bits(packed: PackedTensor) -> float:
    r"""Empirical order-0 entropy of the codes of a packed group, in bits (:math:`nH`;
    the bound of symbol-by-symbol coding, model excluded)."""
    scan = GroupCodes(packed, block_rows_for(packed.row_numel if packed.shape else 1))
    return entropy_bits(scan.histogram)
