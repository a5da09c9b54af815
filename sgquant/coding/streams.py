r"""Integer streams of a coded group: its codes block by block, fixed-width fields, and
the run form of a group dominated by one code.

* :func:`block_codes`: the codes of elements :math:`[s, s + n)` of a bit-packed stream
  (:func:`sgquant.bitpack.pack_bits`), as ``uint8`` (:math:`b \le 8`) or ``uint16``;
* :func:`pack_uint` / :func:`unpack_uint`: non-negative integers in :math:`w` bits
  (the little-endian bit stream of :func:`~sgquant.bitpack.pack_bits`);
* the **run form**: the positions of the codes that differ from the dominant code
  :math:`z` are written as gaps :math:`g_i` (how many :math:`z` precede element
  :math:`i` since the previous one), each gap as symbols of :math:`w` bits with an
  escape :math:`E = 2^w - 1`: :math:`\lfloor g/E \rfloor` escapes ("skip :math:`E`")
  then :math:`g \bmod E` ("skip that many, then an element"). Decoding is a cumulative
  sum, :math:`p = \mathrm{cumsum}(s + [s \ne E]) - 1` over the non-escape symbols.
"""
from __future__ import annotations

import numpy as np
import torch

from ..bitpack import pack_bits, unpack_bits

__all__ = ["RUN_WIDTHS", "code_dtype", "block_codes", "pack_uint", "unpack_uint", "packed_len",
           "gaps_of", "run_symbols", "run_positions", "escape_counts", "escape_table",
           "run_histogram"]

#: Widths of the run symbols that are tried (the escape is :math:`2^w - 1`).
RUN_WIDTHS: tuple[int, ...] = tuple(range(1, 17))


def code_dtype(bits: int) -> np.dtype:
    """The smallest unsigned dtype that holds codes of ``bits`` bits."""
    return np.dtype(np.uint8) if bits <= 8 else np.dtype(np.uint16)


def block_codes(stream: np.ndarray, bits: int, start: int, n: int) -> np.ndarray:
    r"""Codes ``[start, start + n)`` of the bit-packed ``stream`` (``uint8``), where
    :math:`\mathrm{start} \cdot b` is a multiple of 8 (blocks start on whole bytes)."""
    first = start * bits
    if first % 8:
        raise ValueError(f"a block must start on a whole byte, got element {start} at "
                         f"{bits} bits")
    chunk = stream[first // 8:(first + n * bits + 7) // 8]
    if bits == 8:
        return chunk[:n].copy()
    if bits == 1:
        return np.unpackbits(chunk, bitorder="little")[:n]
    if bits in (2, 4):
        shifts = np.arange(0, 8, bits, dtype=np.uint8)
        return ((chunk[:, None] >> shifts) & np.uint8(2**bits - 1)).reshape(-1)[:n]
    if bits == 16:
        return chunk[:2 * n].copy().view("<u2").astype(np.uint16)
    codes = unpack_bits(torch.from_numpy(np.ascontiguousarray(chunk)), bits, n)
    return codes.numpy().astype(code_dtype(bits))


def packed_len(n: int, width: int) -> int:
    """Bytes of ``n`` integers of ``width`` bits."""
    return (n * width + 7) // 8


def pack_uint(values: np.ndarray, width: int) -> bytes:
    """``values`` (each :math:`< 2^w`) in ``width`` bits each (1..16; 0: nothing)."""
    if width == 0 or values.size == 0:
        return b""
    return pack_bits(torch.from_numpy(values.astype(np.int32)), width).numpy().tobytes()


def unpack_uint(buf: np.ndarray, width: int, n: int) -> np.ndarray:
    """``n`` integers of ``width`` bits from the bytes ``buf`` (``int64``)."""
    if width == 0 or n == 0:
        return np.zeros(n, dtype=np.int64)
    if width == 8:
        return buf[:n].astype(np.int64)
    if width == 16:
        return buf[:2 * n].copy().view("<u2").astype(np.int64)
    if width in (1, 2, 4):
        return block_codes(buf, width, 0, n).astype(np.int64)
    data = torch.from_numpy(np.ascontiguousarray(buf[:packed_len(n, width)]))
    return unpack_bits(data, width, n).numpy().astype(np.int64)


def gaps_of(codes: np.ndarray, dominant: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaps (``int64``, see the module docstring) and codes of the elements of ``codes``
    that differ from ``dominant``."""
    pos = np.flatnonzero(codes != dominant)
    gaps = np.diff(pos, prepend=-1) - 1
    return gaps, codes[pos]


def escape_counts(gaps: np.ndarray, width: int) -> int:
    """Escapes needed by ``gaps`` at run width ``width``."""
    return int((gaps // (2**width - 1)).sum())


def escape_table(gap_hist: np.ndarray, widths: tuple[int, ...] = RUN_WIDTHS) -> dict[int, int]:
    r"""Escapes needed at each of ``widths`` by gaps with histogram ``gap_hist``
    (``gap_hist[g]`` gaps of length :math:`g`):
    :math:`\sum_i \lfloor g_i / E \rfloor = \sum_{k \ge 1} \#\{i : g_i \ge kE\}`, read
    from the reverse cumulative histogram (about :math:`1.6 \max g` steps for all
    widths together, whatever the number of gaps)."""
    if gap_hist.size == 0:
        return {w: 0 for w in widths}
    at_least = np.cumsum(gap_hist[::-1])[::-1]  # at_least[v] = #(g >= v)
    top = at_least.size - 1
    return {w: int(at_least[2**w - 1::2**w - 1].sum()) if 2**w - 1 <= top else 0
            for w in widths}


def run_histogram(gap_hist: np.ndarray, width: int, escapes: int) -> np.ndarray:
    """Histogram of the run symbols of width ``width`` of gaps with histogram
    ``gap_hist`` (``escapes``: from :func:`escape_table`)."""
    esc = 2**width - 1
    lengths = np.arange(gap_hist.size)
    hist = np.bincount(lengths % esc, weights=gap_hist, minlength=esc + 1).astype(np.int64)
    hist[esc] += escapes
    return hist


def run_symbols(gaps: np.ndarray, width: int) -> np.ndarray:
    """The run symbols (``int64`` in :math:`[0, 2^w - 1]`) of ``gaps``."""
    esc = 2**width - 1
    q, r = np.divmod(gaps, esc)
    counts = q + 1
    out = np.full(int(counts.sum()), esc, dtype=np.int64)
    out[np.cumsum(counts) - 1] = r
    return out


def run_positions(symbols: np.ndarray, width: int) -> np.ndarray:
    """Element positions (``int64``) encoded by the run ``symbols`` of width ``width``."""
    element = symbols != 2**width - 1
    return np.cumsum(symbols + element)[element] - 1
