r"""Coding one block of a group under its :class:`~sgquant.coding.codecs.Plan`, and the
decoded block (dense codes, or the positions and codes of the non-dominant elements).

Payloads (see :mod:`.codecs`): sparse: ``uint32`` symbol count, symbols in :math:`w`
bits, value indices; ANS: (run form: ``uint32`` symbol count) then the coder's 32-bit
words, the non-dominant codes pushed first so that the symbols are popped first; zstd:
(run form: ``uint32`` symbol count) then one frame of the codes as bytes, or of the
run symbols (one byte each) followed by the non-dominant codes.
"""
from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .codecs import ZSTD_LEVEL, Plan
from .scan import GroupCodes
from .streams import code_dtype, pack_uint, packed_len, run_positions, run_symbols, unpack_uint

__all__ = ["encode_block", "DecodedBlock", "decode_block"]

_local = threading.local()  # zstd contexts are not shared between threads


def _zstd() -> tuple[Any, Any]:
    if not hasattr(_local, "zstd"):
        import zstandard
        _local.zstd = (zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=False,
                                                write_content_size=True),
                       zstandard.ZstdDecompressor())
    return _local.zstd


def _ans():
    import constriction
    return constriction.stream.stack.AnsCoder


# ----------------------------------------------------------------------- encoding
def encode_block(plan: Plan, scan: GroupCodes, i: int) -> bytes:
    """The payload of block ``i`` of ``scan`` under ``plan``."""
    dtype = code_dtype(scan.bits)
    if plan.mode == "codes":
        codes = scan.codes(i)
        if plan.backend == "zstd":
            return _zstd()[0].compress(codes.astype(dtype.newbyteorder("<")).tobytes())
        coder = _ans()()
        plan.models[0].encode(coder, codes.astype(np.int64))
        return coder.get_compressed().astype("<u4").tobytes()
    gaps, values = scan.runs()[i]
    symbols = run_symbols(gaps, plan.width)
    head = struct.pack("<I", symbols.size)
    if plan.codec == "sparse":
        return head + pack_uint(symbols, plan.width) + pack_uint(plan.value_index(values),
                                                                 plan.value_width)
    if plan.backend == "zstd":
        raw = symbols.astype("<u1").tobytes() + values.astype(dtype.newbyteorder("<")).tobytes()
        return head + _zstd()[0].compress(raw)
    coder = _ans()()
    plan.models[1].encode(coder, values.astype(np.int64))
    plan.models[0].encode(coder, symbols)
    return head + coder.get_compressed().astype("<u4").tobytes()


# ----------------------------------------------------------------------- decoding
@dataclass(eq=False)
class DecodedBlock:
    """The ``n`` codes of a decoded block: ``codes`` (dense), or the ``positions``
    (sorted) and ``values`` of the codes that differ from ``dominant``."""

    n: int
    dominant: int
    dtype: np.dtype
    codes: Optional[np.ndarray] = None
    positions: Optional[np.ndarray] = None
    values: Optional[np.ndarray] = None

    def dense(self) -> np.ndarray:
        """All ``n`` codes (made once from the run form)."""
        if self.codes is None:
            codes = np.full(self.n, self.dominant, dtype=self.dtype)
            codes[self.positions] = self.values
            self.codes = codes
        return self.codes

    def write(self, table: np.ndarray, lo: int, hi: int, out: np.ndarray) -> None:
        """``table[code]`` of elements ``[lo, hi)`` into ``out`` (run form: a fill with
        the dominant code's value, then the other codes' values)."""
        if self.positions is None:
            np.take(table, self.dense()[lo:hi], out=out, mode="clip")
            return
        out.fill(table[self.dominant])
        a, b = np.searchsorted(self.positions, (lo, hi))
        if b > a:
            out[self.positions[a:b] - lo] = table[self.values[a:b]]


def _zstd_bytes(payload: np.ndarray, size: int) -> bytes:
    out = _zstd()[1].decompress(payload.tobytes(), max_output_size=size)
    if len(out) != size:
        raise ValueError(f"a zstd frame holds {len(out)} bytes, {size} expected")
    return out


def decode_block(plan: Plan, payload: np.ndarray, n: int, bits: int) -> DecodedBlock:
    """The ``n`` codes of a block from its ``payload`` (``uint8``)."""
    dtype = code_dtype(bits)
    le = dtype.newbyteorder("<")
    if plan.mode == "codes":
        if plan.backend == "zstd":
            codes = np.frombuffer(_zstd_bytes(payload, n * dtype.itemsize), dtype=le)
        else:
            coder = _ans()(payload.copy().view("<u4"))
            codes = plan.models[0].decode(coder, n)
        return DecodedBlock(n, plan.dominant, dtype, codes=codes.astype(dtype))
    nsym = int(payload[:4].copy().view("<u4")[0])
    if plan.codec == "sparse":
        symbols = unpack_uint(payload[4:], plan.width, nsym)
        pos = run_positions(symbols, plan.width)
        rest = payload[4 + packed_len(nsym, plan.width):]
        index = unpack_uint(rest, plan.value_width, pos.size)
        values = plan.values[index] if plan.values.size else index
    elif plan.backend == "zstd":
        raw = _zstd()[1].decompress(payload[4:].tobytes())
        symbols = np.frombuffer(raw, dtype=np.uint8, count=nsym).astype(np.int64)
        pos = run_positions(symbols, plan.width)
        values = np.frombuffer(raw, dtype=le, count=pos.size, offset=nsym)
        if len(raw) != nsym + pos.size * dtype.itemsize:
            raise ValueError(f"a zstd frame holds {len(raw)} bytes, "
                             f"{nsym + pos.size * dtype.itemsize} expected")
    else:
        coder = _ans()(payload[4:].copy().view("<u4"))
        symbols = plan.models[0].decode(coder, nsym)
        pos = run_positions(symbols, plan.width)
        values = plan.models[1].decode(coder, pos.size)
    if pos.size and (int(pos[-1]) >= n or int(pos[0]) < 0):
        raise ValueError(f"a block of {n} codes names position {int(pos[-1])}")
    return DecodedBlock(n, plan.dominant, dtype, positions=pos, values=values.astype(dtype))
