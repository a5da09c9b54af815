r"""Bit packing: quantized codes stored in :math:`\lceil n b / 8 \rceil` bytes.

Code :math:`i` of a stream occupies stream bits :math:`[ib, (i+1)b)`, least significant
bit first; stream bit :math:`k` is bit :math:`k \bmod 8` of byte :math:`\lfloor k/8 \rfloor`
(little-endian). Packing and unpacking are vectorised torch bit operations (shifts and
masks over whole chunks, no per-row Python work), so they run on whatever device the
codes live on.

* :func:`pack_bits` / :func:`unpack_bits`: codes :math:`\leftrightarrow` bytes, exactly;
* :class:`QuantizedTensor`: int32 codes with their float32 ``min`` and ``scale``,
  :math:`\mathbf{x}' = s \cdot q + \min`;
* :class:`PackedTensor`: the same, bit-packed, with row access (:meth:`PackedTensor.rows`,
  :meth:`PackedTensor.gather`) that decodes only the bytes of the rows asked for.
  Widths 1, 2 and 4 decode through a 256-entry byte table (one float32 row per byte
  value, computed with the same float32 operations as :meth:`QuantizedTensor.dequantize`,
  hence identical values); on the CPU the table is read as one opaque
  :math:`4 \cdot 8/b`-byte item per byte value (``numpy.take``), a single gather over
  the chunk's bytes. Width 8 converts the bytes themselves (:math:`s \cdot q + \min`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
import torch
from torch import Tensor

from .bitwidth import FP32_BITS, GROUP_OVERHEAD_BYTES, check_bits, stored_nbytes
from .checks import check_int

__all__ = ["pack_bits", "unpack_bits", "QuantizedTensor", "PackedTensor", "LUT_BITS"]

# Codes handled per step by pack_bits / unpack_bits. A multiple of 8, so that every chunk
# but the last one ends on a byte boundary at any width; temporaries stay ~MBs.
_CHUNK: int = 1 << 16
#: Widths decoded through a byte table (a byte holds a whole number of codes).
LUT_BITS: tuple[int, ...] = (1, 2, 4, 8)
_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _check_pack_bits(bits: object) -> int:
    b = check_bits(bits)
    if b == FP32_BITS:
        raise ValueError(f"bit packing supports bits 1..16, got {bits!r}")
    return b


def _to_flat_codes(codes: Union[Tensor, np.ndarray], bits: int) -> Tensor:
    if isinstance(codes, np.ndarray):
        if not np.issubdtype(codes.dtype, np.integer):
            raise ValueError(f"codes must be an integer array, got dtype {codes.dtype}")
        codes = torch.from_numpy(codes.astype(np.int64, copy=False))
    if not isinstance(codes, Tensor):
        raise ValueError(f"codes must be an integer torch.Tensor, got {type(codes).__name__}")
    if codes.dtype not in _INT_DTYPES:
        raise ValueError(f"codes must be an integer torch.Tensor, got dtype {codes.dtype}")
    flat = codes.detach().reshape(-1)
    if flat.numel():
        lo, hi = (int(v) for v in torch.aminmax(flat))
        top = 2**bits - 1
        if lo < 0 or hi > top:
            raise ValueError(
                f"codes for bits={bits} must lie in [0, {top}], got values in [{lo}, {hi}]")
    return flat


def _pack_chunk(c: Tensor, bits: int) -> Tensor:
    """Bytes of the codes ``c`` (int32, 1-D), the stream starting at bit 0."""
    dev = c.device
    if bits == 8:
        return c.to(torch.uint8)
    if bits == 16:
        return torch.stack([c & 0xFF, c >> 8], dim=1).to(torch.uint8).reshape(-1)
    if 8 % bits == 0:  # 1, 2, 4: a whole number of codes per byte
        per = 8 // bits
        c = torch.nn.functional.pad(c, (0, (-c.numel()) % per))
        shifts = torch.arange(per, device=dev, dtype=torch.int32) * bits
        return (c.view(-1, per) << shifts).sum(1, dtype=torch.int32).to(torch.uint8)
    bitmat = ((c.view(-1, 1) >> torch.arange(bits, device=dev, dtype=torch.int32)) & 1)
    flat = torch.nn.functional.pad(bitmat.reshape(-1).to(torch.uint8), (0, (-bitmat.numel()) % 8))
    weights = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], device=dev, dtype=torch.uint8)
    return (flat.view(-1, 8) * weights).sum(1, dtype=torch.int32).to(torch.uint8)


def pack_bits(codes: Union[Tensor, np.ndarray], bits: int) -> Tensor:
    r"""Pack integer ``codes`` in :math:`[0, 2^b - 1]` into a little-endian bit stream.

    Returns a 1-D ``torch.uint8`` tensor of :math:`\lceil n b / 8 \rceil` bytes on the
    codes' device (``codes`` is flattened row-major). Chunks whose :math:`n b` is a
    multiple of 8 (e.g. a multiple of 8 codes) pack to byte-aligned pieces that
    concatenate into the stream of the whole.
    """
    bits = _check_pack_bits(bits)
    flat = _to_flat_codes(codes, bits)
    n = flat.numel()
    out = torch.empty((n * bits + 7) // 8, dtype=torch.uint8, device=flat.device)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        piece = _pack_chunk(flat[start:stop].to(torch.int32), bits)
        b0 = start * bits // 8  # start is a multiple of 8
        out[b0:b0 + piece.numel()] = piece
    return out


def _unpack_chunk(data: Tensor, bits: int, n: int, skip: int) -> Tensor:
    """``n`` int32 codes from the bytes ``data``, the first starting at bit ``skip`` (< 8)."""
    dev = data.device
    if skip == 0 and bits == 8:
        return data[:n].to(torch.int32)
    if skip == 0 and bits == 16:
        pairs = data[:2 * n].view(-1, 2).to(torch.int32)
        return pairs[:, 0] | (pairs[:, 1] << 8)
    if 8 % bits == 0 and skip % bits == 0:
        per = 8 // bits
        shifts = torch.arange(per, device=dev, dtype=torch.int32) * bits
        codes = (data.to(torch.int32).view(-1, 1) >> shifts) & (2**bits - 1)
        first = skip // bits
        return codes.view(-1)[first:first + n]
    bitmat = (data.to(torch.int32).view(-1, 1) >> torch.arange(8, device=dev, dtype=torch.int32)) & 1
    stream = bitmat.view(-1)[skip:skip + n * bits].view(n, bits)
    weights = torch.ones(bits, device=dev, dtype=torch.int32) << torch.arange(
        bits, device=dev, dtype=torch.int32)
    return (stream * weights).sum(1, dtype=torch.int32)


def unpack_bits(packed: Union[Tensor, np.ndarray], bits: int, numel: int,
                bit_offset: int = 0) -> Tensor:
    r"""Inverse of :func:`pack_bits`: ``numel`` codes of ``bits`` bits as ``torch.int32``.

    ``bit_offset`` starts reading at that stream bit (code :math:`i` of a stream starts
    at bit :math:`ib`), so a slice of codes can be decoded from the bytes covering it.
    """
    bits = _check_pack_bits(bits)
    numel = check_int(numel, "numel", minimum=0)
    bit_offset = check_int(bit_offset, "bit_offset", minimum=0)
    if isinstance(packed, np.ndarray) and packed.dtype == np.uint8:
        packed = torch.from_numpy(packed)
    if not isinstance(packed, Tensor) or packed.dtype != torch.uint8:
        what = f"dtype {packed.dtype}" if isinstance(packed, Tensor) else type(packed).__name__
        raise ValueError(f"packed must be a uint8 tensor, got {what}")
    data = packed.detach().reshape(-1)
    need = (bit_offset + numel * bits + 7) // 8
    if data.numel() < need:
        raise ValueError(f"packed holds {data.numel()} bytes, but {numel} codes of {bits} bits "
                         f"from bit {bit_offset} need {need}")
    out = torch.empty(numel, dtype=torch.int32, device=data.device)
    for start in range(0, numel, _CHUNK):
        stop = min(start + _CHUNK, numel)
        first = bit_offset + start * bits
        b0, skip = divmod(first, 8)
        b1 = (first + (stop - start) * bits + 7) // 8
        out[start:stop] = _unpack_chunk(data[b0:b1], bits, stop - start, skip)
    return out


# ------------------------------------------------------------------ containers
@dataclass(eq=False)
class QuantizedTensor:
    r"""Codes of a linearly quantized tensor: :math:`\mathbf{x}' = s \cdot q + \min`.

    ``codes`` is an ``int32`` tensor of shape ``shape`` (``None`` when ``bits == 32``).
    At 32 bits nothing is quantized: ``values`` holds the original tensor, which
    :meth:`dequantize` returns unchanged (``minimum=0.0``, ``scale=1.0`` are unused).
    """

    codes: Optional[Tensor]
    minimum: float
    scale: float
    bits: int
    shape: tuple[int, ...]
    rounding: str = "floor"
    values: Optional[Tensor] = None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        r"""Stored size: :math:`\lceil n b / 8 \rceil + 8`; :math:`4n` at 32 bits; 0 if empty."""
        return stored_nbytes(self.numel, self.bits)

    def dequantize(self) -> Tensor:
        r""":math:`\mathbf{x}' = s \cdot q + \min` as float32 (``values`` itself at 32 bits)."""
        if self.bits == FP32_BITS:
            assert self.values is not None
            return self.values
        assert self.codes is not None
        return self.codes.to(torch.float32).mul_(self.scale).add_(self.minimum)

    def pack(self) -> "PackedTensor":
        """Bit-packed form; 32-bit tensors are stored as raw float32 bytes."""
        if self.bits == FP32_BITS:
            assert self.values is not None
            raw = self.values.detach().to(torch.float32).contiguous()
            data = raw.reshape(-1).view(torch.uint8).clone()
        else:
            assert self.codes is not None
            data = pack_bits(self.codes, self.bits)
        return PackedTensor(data, self.minimum, self.scale, self.bits, self.shape, self.rounding)


@dataclass(eq=False)
class PackedTensor:
    r"""Bit-packed codes (``data``: 1-D ``torch.uint8``) with float32 ``min``/``scale``.

    At 32 bits ``data`` holds the raw float32 bytes. ``nbytes`` equals
    :attr:`QuantizedTensor.nbytes` of the same tensor.
    """

    data: Tensor
    minimum: float
    scale: float
    bits: int
    shape: tuple[int, ...]
    rounding: str = "floor"
    _table: Optional[Tensor] = field(default=None, repr=False)
    _items: Optional[np.ndarray] = field(default=None, repr=False)
    _items_of: Optional[Tensor] = field(default=None, repr=False)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """``data.numel() + 8`` (min and scale); ``data.numel()`` at 32 bits; 0 if empty."""
        if self.numel == 0:
            return 0
        if self.bits == FP32_BITS:
            return int(self.data.numel())
        return int(self.data.numel()) + GROUP_OVERHEAD_BYTES

    @property
    def row_numel(self) -> int:
        """Elements per row (along dim 0)."""
        return math.prod(self.shape[1:])

    def unpack(self) -> QuantizedTensor:
        """Decode all codes back into a :class:`QuantizedTensor`."""
        if self.bits == FP32_BITS:
            values = self.data.view(torch.float32).clone().reshape(self.shape)
            return QuantizedTensor(None, self.minimum, self.scale, self.bits, self.shape,
                                   self.rounding, values=values)
        codes = unpack_bits(self.data, self.bits, self.numel).reshape(self.shape)
        return QuantizedTensor(codes, self.minimum, self.scale, self.bits, self.shape, self.rounding)

    def dequantize(self) -> Tensor:
        r""":math:`\mathbf{x}' = s \cdot q + \min` of the whole tensor (float32)."""
        return self.unpack().dequantize()

    # ------------------------------------------------------------ row access
    def table(self) -> Tensor:
        r"""``256 x (8 / b)`` float32 table (widths 1, 2, 4, 8): the rematched values of
        the codes held by each byte value, in stream order."""
        if self.bits not in LUT_BITS:
            raise ValueError(f"a byte table needs bits in {LUT_BITS}, got {self.bits}")
        if self._table is None or self._table.device != self.data.device:
            b, dev = self.bits, self.data.device
            per_byte = 8 // b
            values = torch.arange(2**b, dtype=torch.float32, device=dev).mul_(
                self.scale).add_(self.minimum)
            byte = torch.arange(256, device=dev).view(-1, 1)
            codes = (byte >> (torch.arange(per_byte, device=dev) * b)) & (2**b - 1)
            self._table = values[codes]
        return self._table

    def _byte_items(self) -> np.ndarray:
        """:meth:`table` viewed as 256 opaque items of ``4 * 8 / b`` bytes (CPU)."""
        table = self.table()
        if self._items is None or self._items_of is not table:
            width = 4 * table.shape[1]
            self._items = table.contiguous().numpy().view(np.dtype(("V", width))).reshape(256)
            self._items_of = table
        return self._items

    def _decode(self, data: Tensor, bit_offset: int, n: int) -> Tensor:
        """``n`` rematched values (1-D float32) from the bytes ``data``, starting at
        stream bit ``bit_offset`` of ``data``."""
        b = self.bits
        if b in LUT_BITS and bit_offset % b == 0:
            per_byte = 8 // b
            first = bit_offset // b
            data = data[:(first + n + per_byte - 1) // per_byte]
            if b == 8:
                out = data.to(torch.float32).mul_(self.scale).add_(self.minimum)
            elif data.device.type == "cpu":
                items = np.take(self._byte_items(), data.numpy(), axis=0)
                out = torch.from_numpy(items.view(np.float32).reshape(-1))
            else:
                out = self.table().index_select(0, data.to(torch.int32)).view(-1)
            return out[first:first + n] if (first or out.numel() != n) else out
        codes = unpack_bits(data, b, n, bit_offset=bit_offset)
        return codes.to(torch.float32).mul_(self.scale).add_(self.minimum)

    def rows(self, start: int, stop: int) -> Tensor:
        r"""Rows ``[start, stop)`` (along dim 0) of :meth:`dequantize`, float32.

        Only the bytes covering stream bits :math:`[\mathrm{start} \cdot r b,
        \mathrm{stop} \cdot r b)` are decoded, :math:`r` being the elements per row.
        """
        if len(self.shape) == 0:
            raise ValueError("row access needs a tensor with at least one dimension")
        start = check_int(start, "start", minimum=0)
        stop = check_int(stop, "stop", minimum=0)
        if not start <= stop <= self.shape[0]:
            raise ValueError(f"need 0 <= start <= stop <= {self.shape[0]}, "
                             f"got start={start}, stop={stop}")
        per_row = self.row_numel
        out_shape = (stop - start, *self.shape[1:])
        n = (stop - start) * per_row
        if n == 0:
            return torch.empty(out_shape, dtype=torch.float32, device=self.data.device)
        if self.bits == FP32_BITS:
            chunk = self.data[start * per_row * 4:stop * per_row * 4]
            return chunk.view(torch.float32).clone().reshape(out_shape)
        first = start * per_row * self.bits
        b0 = first // 8
        b1 = (first + n * self.bits + 7) // 8
        return self._decode(self.data[b0:b1], first - 8 * b0, n).view(out_shape)

    #: the name of :meth:`rows` before 0.2
    dequantize_rows = rows

    def gather(self, rows: Tensor, block: int = 1 << 14) -> Tensor:
        r"""Rows ``rows`` (any order, repeats allowed) of :meth:`dequantize`, float32.

        Only the bytes of the requested rows are decoded, ``block`` rows at a time. A row
        of :math:`r` elements occupies stream bits :math:`[i r b, (i+1) r b)`: when
        :math:`r b` is a multiple of 8 the rows are gathered as whole bytes; otherwise the
        bytes covering each row are expanded to bits and the row's bits taken at its
        offset.
        """
        if self.bits == FP32_BITS:
            raise ValueError("gather needs a bit-packed tensor (bits 1..16), got bits 32")
        if len(self.shape) == 0:
            raise ValueError("gather needs a tensor with at least one dimension")
        dev = self.data.device
        per_row = self.row_numel
        rows = rows.reshape(-1).to(device=dev, dtype=torch.int64)
        m = rows.numel()
        out_shape = (m, *self.shape[1:])
        if m == 0 or per_row == 0:
            return torch.empty(out_shape, dtype=torch.float32, device=dev)
        if int(rows.min()) < 0 or int(rows.max()) >= self.shape[0]:
            raise ValueError(f"rows must lie in [0, {self.shape[0]}), got "
                             f"[{int(rows.min())}, {int(rows.max())}]")
        bits = self.bits
        row_bits = per_row * bits
        if row_bits % 8 == 0:
            nb = row_bits // 8
            data = self.data[: self.shape[0] * nb].view(self.shape[0], nb).index_select(0, rows)
            return self._decode(data.reshape(-1), 0, m * per_row).view(out_shape)
        out = torch.empty(m, per_row, dtype=torch.float32, device=dev)
        nb = (7 + row_bits + 7) // 8  # bytes covering any row, whatever its bit offset
        size = self.data.numel()
        bit_idx = torch.arange(row_bits, device=dev)
        byte_idx = torch.arange(nb, device=dev)
        shifts = torch.arange(8, device=dev, dtype=torch.int32)
        weights = torch.ones(bits, device=dev, dtype=torch.int32) << torch.arange(
            bits, device=dev, dtype=torch.int32)
        step = max(1, block // max(1, per_row // 64))
        for s in range(0, m, step):
            e = min(m, s + step)
            first = rows[s:e] * row_bits
            b0, off = first // 8, first % 8
            idx = (b0[:, None] + byte_idx).clamp_(max=size - 1)
            stream = ((self.data[idx].to(torch.int32).unsqueeze(-1) >> shifts) & 1).view(e - s, -1)
            sel = torch.gather(stream, 1, off[:, None] + bit_idx)
            codes = (sel.view(e - s, per_row, bits) * weights).sum(-1, dtype=torch.int32)
            out[s:e] = codes.to(torch.float32)
        return out.mul_(self.scale).add_(self.minimum).view(out_shape)
