r"""Order-0 symbol models: the histogram of a stream, stored with the group, and the
entropy coder built on it (``constriction``'s ANS with a categorical model).

A :class:`SymbolModel` lists the symbols a stream uses (as a bitmap over the alphabet
or as a list, whichever is smaller) and one byte per symbol, its count on a log scale:
:math:`v_s = \max(0, 255 - \mathrm{round}(16 \log_2 (\max c / c_s)))`, read back as the
weight :math:`2^{v_s/16}` (steps of 4.4%, a negligible loss in code length). The coder
uses :math:`p_s = 2^{v_s/16} / \sum_t 2^{v_t/16}` over the used symbols only (their
index is coded, then mapped back), so encoder and decoder build the same model from
the stored bytes.

:func:`entropy_bits` is the empirical order-0 entropy
:math:`n H = -\sum_s c_s \log_2 (c_s / n)`: the least number of bits any
symbol-by-symbol code of the stream needs, model excluded.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

__all__ = ["entropy_bits", "SymbolModel"]

_LEVELS = 16.0  # weight steps per doubling


def entropy_bits(counts: np.ndarray) -> float:
    r"""Empirical order-0 entropy of a stream with histogram ``counts``, in bits:
    :math:`-\sum_s c_s \log_2 (c_s / n)` (0 for an empty or constant stream)."""
    c = np.asarray(counts, dtype=np.float64)
    c = c[c > 0]
    n = float(c.sum())
    if n == 0:
        return 0.0
    return float(-(c * np.log2(c / n)).sum())


@dataclass(eq=False)
class SymbolModel:
    """Used ``symbols`` (sorted, unique) of a stream and their log-scale ``weights``
    (one byte each, see the module docstring)."""

    symbols: np.ndarray
    weights: np.ndarray
    _coder_model: Any = field(default=None, repr=False)
    _index: Optional[np.ndarray] = field(default=None, repr=False)

    @classmethod
    def of_histogram(cls, hist: np.ndarray) -> "SymbolModel":
        """The model of a stream whose symbol :math:`s` occurs ``hist[s]`` times."""
        hist = np.asarray(hist)
        symbols = np.flatnonzero(hist)
        counts = hist[symbols].astype(np.float64)
        weights = np.zeros(0, dtype=np.int64)
        if counts.size:
            steps = np.round(_LEVELS * np.log2(counts.max() / counts))
            weights = np.maximum(0, 255 - steps).astype(np.int64)
        return cls(symbols.astype(np.int64), weights)

    @property
    def size(self) -> int:
        """Number of used symbols."""
        return int(self.symbols.size)

    @property
    def trivial(self) -> bool:
        """At most one symbol: the stream costs no bits."""
        return self.size <= 1

    def probabilities(self) -> np.ndarray:
        """:math:`p_s` of the used symbols, in their order (float64)."""
        w = np.exp2(self.weights / _LEVELS)
        return w / w.sum()

    def to_arrays(self) -> list[np.ndarray]:
        """What is stored: a one-byte kind, the symbols (a bitmap over the alphabet, or a
        list of 1- or 2-byte symbols) and the weights (one byte each)."""
        top = int(self.symbols.max()) + 1 if self.size else 0
        as_list = self.symbols.astype("<u1" if top <= 256 else "<u2")
        if (top + 7) // 8 < as_list.nbytes:
            mask = np.zeros(top, dtype=np.uint8)
            mask[self.symbols] = 1
            return [np.array([1], "<u1"), np.packbits(mask, bitorder="little"),
                    self.weights.astype("<u1")]
        return [np.array([0], "<u1"), as_list, self.weights.astype("<u1")]

    @classmethod
    def from_arrays(cls, kind: np.ndarray, symbols: np.ndarray,
                    weights: np.ndarray) -> "SymbolModel":
        if int(kind[0]) == 1:
            symbols = np.flatnonzero(np.unpackbits(symbols, bitorder="little"))
        if symbols.size != weights.size:
            raise ValueError(f"a symbol model lists {symbols.size} symbols but "
                             f"{weights.size} weights")
        return cls(symbols.astype(np.int64), weights.astype(np.int64))

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.to_arrays())

    def ideal_bits(self, hist: np.ndarray) -> float:
        r"""Bits of a stream with histogram ``hist`` coded with this model:
        :math:`-\sum_s h_s \log_2 p_s` (the cross-entropy; ANS adds a few bytes)."""
        if self.trivial:
            return 0.0
        h = np.asarray(hist, dtype=np.float64)[self.symbols]
        return float(-(h * np.log2(self.probabilities())).sum())

    # ------------------------------------------------------------ entropy coding
    def coder_model(self) -> Any:
        """``constriction``'s categorical model over the used symbols' indices."""
        if self._coder_model is None:
            import constriction
            self._coder_model = constriction.stream.model.Categorical(self.probabilities(),
                                                                     perfect=False)
        return self._coder_model

    def index_of(self, values: np.ndarray) -> np.ndarray:
        """Indices (``int32``) of ``values`` among the used symbols."""
        if self._index is None:
            index = np.full(int(self.symbols.max()) + 1, -1, dtype=np.int32)
            index[self.symbols] = np.arange(self.size, dtype=np.int32)
            self._index = index
        return self._index[values]

    def encode(self, coder: Any, values: np.ndarray) -> None:
        """Push ``values`` (used symbols) on the ANS stack ``coder`` (nothing if trivial)."""
        if not self.trivial and values.size:
            coder.encode_reverse(self.index_of(values), self.coder_model())

    def decode(self, coder: Any, n: int) -> np.ndarray:
        """Pop ``n`` symbols (``int64``) from the ANS stack ``coder``."""
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        if self.trivial:
            return np.full(n, int(self.symbols[0]) if self.size else 0, dtype=np.int64)
        return self.symbols[coder.decode(self.coder_model(), n)]
