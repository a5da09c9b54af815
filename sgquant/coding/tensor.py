r"""A quantized group held as independently decodable coded blocks, with integrity
checks, and the choice of its codec.

:class:`CodedTensor` stores, for a group of :math:`N` rows: the group header (codec,
mode, width, dominant code, value table or models; :mod:`.codecs`) with its CRC32,
the blocks' payloads in one byte buffer, the block index (:math:`B + 1` offsets) and
one CRC32 per block, and the float32 ``min`` and ``scale``:

.. math::
    \text{nbytes} = |\text{header}| + 4 + |\text{payloads}| + |\text{offsets}|
    + 4B + 8 .

Rows are decoded block by block just before they are consumed (:meth:`CodedTensor.rows`,
:meth:`CodedTensor.gather`); the last decoded block's codes are kept (one block, about
:data:`~sgquant.coding.scan.DEFAULT_BLOCK_ELEMENTS` bytes), and codes become floats
through a :math:`2^b`-entry table computed with the same float32 operations as
:meth:`sgquant.bitpack.QuantizedTensor.dequantize`, so the rows equal those of the
fixed-width :class:`~sgquant.bitpack.PackedTensor` bit for bit. A block whose bytes do
not match its CRC32, a header that does not match its own, or a buffer shorter or
longer than its index raises :class:`ValueError` naming the group.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
import torch
from torch import Tensor

from ..bitwidth import FP32_BITS, GROUP_OVERHEAD_BYTES
from ..checks import check_choice, check_int
from ..bitpack import PackedTensor, pack_bits
from .blocks import DecodedBlock, decode_block, encode_block
from .codecs import TOLERANCE, Plan, ans_plan, plan_sparse, sparse_payload_sizes, zstd_plans
from .scan import DEFAULT_BLOCK_ELEMENTS, GroupCodes, block_rows_for

__all__ = ["CODECS", "check_codec", "CodedTensor", "coded_nbytes", "encode_group",
           "encode_codes"]

#: Storage of a quantized group: fixed-width bit packing (``packed``, the
#: :class:`~sgquant.bitpack.PackedTensor`), the ``sparse`` or ``entropy`` block codec,
#: or ``auto``: whichever of the three takes the fewest bytes, per group.
CODECS: tuple[str, ...] = ("packed", "sparse", "entropy", "auto")


def check_codec(codec: object) -> str:
    """``codec`` if it is one of :data:`CODECS` (``ValueError`` listing them otherwise)."""
    return check_choice(codec, "codec", CODECS)


def _crc(buf: Union[bytes, np.ndarray]) -> int:
    return zlib.crc32(buf if isinstance(buf, bytes) else buf.data) & 0xFFFFFFFF


@dataclass(eq=False)
class CodedTensor:
    """A group coded block by block (see the module docstring). Build one with
    :func:`encode_group` / :func:`encode_codes`."""

    name: str
    codec: str
    bits: int
    shape: tuple[int, ...]
    minimum: float
    scale: float
    rounding: str
    meta: bytes
    meta_checksum: int
    data: np.ndarray
    offsets: np.ndarray
    checksums: np.ndarray
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _plan: Optional[tuple[bytes, Plan]] = field(default=None, repr=False)
    _cache: Optional[tuple[int, DecodedBlock]] = field(default=None, repr=False)
    _values: Optional[np.ndarray] = field(default=None, repr=False)

    # ----------------------------------------------------------------- sizes
    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def row_numel(self) -> int:
        return math.prod(self.shape[1:])

    @property
    def num_blocks(self) -> int:
        return int(self.checksums.size)

    @property
    def nbytes(self) -> int:
        """Everything stored: header and its CRC, payloads, block index, block CRCs,
        ``min`` and ``scale``."""
        return (len(self.meta) + 4 + int(self.data.size) + int(self.offsets.nbytes)
                + int(self.checksums.nbytes) + GROUP_OVERHEAD_BYTES)

    @property
    def plan(self) -> Plan:
        """The group header, checked against its CRC32 and parsed (once per header)."""
        if self._plan is None or self._plan[0] is not self.meta:
            if _crc(self.meta) != self.meta_checksum:
                raise ValueError(f"coded group {self.name!r}: its header fails its checksum "
                                 f"(corrupted)")
            try:
                plan = Plan.from_meta(self.meta)
            except (ValueError, KeyError, IndexError, StopIteration) as exc:
                raise ValueError(f"coded group {self.name!r}: unreadable header "
                                 f"({exc})") from None
            self._plan = (self.meta, plan)
        return self._plan[1]

    @property
    def mode(self) -> str:
        return self.plan.mode

    @property
    def block_rows(self) -> int:
        return self.plan.block_rows

    # ---------------------------------------------------------------- decoding
    def block(self, i: int) -> DecodedBlock:
        """Codes of block ``i`` (flattened rows), checked against the block's CRC32."""
        if self._cache is not None and self._cache[0] == i:
            return self._cache[1]
        plan = self.plan
        expected = int(self.offsets[-1]) if self.offsets.size else 0
        if self.data.size != expected or self.offsets.size != self.num_blocks + 1:
            raise ValueError(f"coded group {self.name!r} holds {self.data.size} bytes but its "
                             f"block index says {expected}: the buffer is truncated or "
                             f"corrupted")
        o0, o1 = int(self.offsets[i]), int(self.offsets[i + 1])
        if not 0 <= o0 <= o1 <= expected:
            raise ValueError(f"coded group {self.name!r}: block {i} has an invalid "
                             f"index [{o0}, {o1}) (corrupted)")
        payload = self.data[o0:o1]
        if _crc(payload) != int(self.checksums[i]):
            raise ValueError(f"coded group {self.name!r}: block {i} of {self.num_blocks} "
                             f"fails its checksum (corrupted)")
        r0 = i * plan.block_rows
        n = (min(r0 + plan.block_rows, self.shape[0]) - r0) * self.row_numel
        try:
            codes = decode_block(plan, payload, n, self.bits)
        except (ValueError, IndexError, RuntimeError, OverflowError) as exc:
            raise ValueError(f"coded group {self.name!r}: block {i} cannot be decoded "
                             f"({exc})") from None
        self._cache = (i, codes)
        return codes

    def values_table(self) -> np.ndarray:
        r"""The :math:`2^b` rematched values :math:`s \cdot q + \min` (float32)."""
        if self._values is None:
            self._values = torch.arange(2**self.bits, dtype=torch.float32).mul_(
                self.scale).add_(self.minimum).numpy()
        return self._values

    def codes(self) -> np.ndarray:
        """All codes, in the group's shape (for checks)."""
        parts = [self.block(i).dense() for i in range(self.num_blocks)]
        flat = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
        return flat.reshape(self.shape)

    def rows(self, start: int, stop: int) -> Tensor:
        """Rematched rows ``[start, stop)`` (float32), decoding only their blocks."""
        start = check_int(start, "start", minimum=0)
        stop = check_int(stop, "stop", minimum=0)
        if not start <= stop <= self.shape[0]:
            raise ValueError(f"need 0 <= start <= stop <= {self.shape[0]}, "
                             f"got start={start}, stop={stop}")
        r, R = self.row_numel, self.block_rows
        out = torch.empty((stop - start, *self.shape[1:]), dtype=torch.float32)
        flat = out.view(-1).numpy()
        table = self.values_table()
        for i in range(start // R, -(-stop // R)):
            r0, r1 = max(start, i * R), min(stop, (i + 1) * R)
            self.block(i).write(table, (r0 - i * R) * r, (r1 - i * R) * r,
                                flat[(r0 - start) * r:(r1 - start) * r])
        return out.to(self.device)

    def gather(self, rows: Tensor) -> Tensor:
        """Rematched rows ``rows`` (any order, repeats allowed; float32)."""
        idx = rows.reshape(-1).to(torch.int64).cpu().numpy()
        m, r, R = idx.size, self.row_numel, self.block_rows
        out = np.empty((m, r), dtype=np.float32)
        if m:
            if int(idx.min()) < 0 or int(idx.max()) >= self.shape[0]:
                raise ValueError(f"rows must lie in [0, {self.shape[0]}), got "
                                 f"[{int(idx.min())}, {int(idx.max())}]")
            blocks = idx // R
            order = np.argsort(blocks, kind="stable")
            ids, starts = np.unique(blocks[order], return_index=True)
            table = self.values_table()
            for i, s, e in zip(ids, starts, [*starts[1:], m]):
                sel = order[s:e]
                codes = self.block(int(i)).dense().reshape(-1, r)
                out[sel] = np.take(table, codes[idx[sel] - int(i) * R])
        return torch.from_numpy(out).view((m, *self.shape[1:])).to(self.device)

    def dequantize(self) -> Tensor:
        """The whole rematched tensor (float32)."""
        return self.rows(0, self.shape[0])

    def release(self) -> None:
        """Forget the cached block (its memory returns)."""
        self._cache = None


# ------------------------------------------------------------------------ encoding
def _offsets(sizes: list[int]) -> np.ndarray:
    """The block index: :math:`B + 1` offsets (``uint32``; ``uint64`` beyond 4 GB)."""
    total = int(sum(sizes))
    return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(
        "<u4" if total < 2**32 else "<u8")


def coded_nbytes(meta: bytes, payload_sizes: list[int]) -> int:
    """:attr:`CodedTensor.nbytes` of a group with header ``meta`` and these payloads."""
    offsets = _offsets(payload_sizes)
    return (len(meta) + 4 + int(sum(payload_sizes)) + int(offsets.nbytes)
            + 4 * len(payload_sizes) + GROUP_OVERHEAD_BYTES)


def _encode(packed: PackedTensor, scan: GroupCodes, plan: Plan, name: str,
            payloads: Optional[list[bytes]] = None) -> CodedTensor:
    if payloads is None:
        payloads = [encode_block(plan, scan, i) for i in range(scan.num_blocks)]
    offsets = _offsets([len(p) for p in payloads])
    checksums = np.array([_crc(p) for p in payloads], dtype="<u4")
    data = np.frombuffer(b"".join(payloads), dtype=np.uint8).copy()
    meta = plan.to_meta()
    return CodedTensor(name, plan.codec, packed.bits, tuple(packed.shape), packed.minimum,
                       packed.scale, packed.rounding, meta, _crc(meta), data, offsets,
                       checksums, device=packed.data.device)


def entropy_coded(packed: PackedTensor, scan: GroupCodes, name: str) -> CodedTensor:
    """The entropy codec's choice (see :mod:`.codecs`): zstd plans measured by coding
    them, the ANS plan by its ideal size; of those within ``TOLERANCE`` of the smallest,
    zstd (the faster to decode) before ANS."""
    plan, size = ans_plan(scan)
    options = [(size, 1, plan, None)]
    for zplan in zstd_plans(scan):
        payloads = [encode_block(zplan, scan, i) for i in range(scan.num_blocks)]
        options.append((coded_nbytes(zplan.to_meta(), [len(p) for p in payloads]), 0, zplan,
                        payloads))
    least = min(o[0] for o in options)
    _, _, plan, payloads = min((o for o in options if o[0] <= (1 + TOLERANCE) * least),
                               key=lambda o: (o[1], o[0]))
    return _encode(packed, scan, plan, name, payloads)


def encode_group(packed: PackedTensor, codec: str = "auto", *, name: str = "group",
                 block_elements: int = DEFAULT_BLOCK_ELEMENTS
                 ) -> Union[PackedTensor, CodedTensor]:
    """``packed`` stored with ``codec`` (:data:`CODECS`): ``packed`` returns it as it is;
    ``sparse`` / ``entropy`` code it in blocks of about ``block_elements`` elements;
    ``auto`` measures the three and keeps the smallest (fixed width on a tie, then
    sparse: the faster to decode). ``name`` labels the group in error messages."""
    codec = check_codec(codec)
    if not isinstance(packed, PackedTensor):
        raise ValueError(f"encode_group needs a PackedTensor, got {type(packed).__name__}")
    if packed.bits == FP32_BITS:
        raise ValueError(f"group {name!r} is kept in float32 (bits 32): nothing to code")
    if codec == "packed" or packed.numel == 0:
        return packed
    scan = GroupCodes(packed, block_rows_for(packed.row_numel if packed.shape else 1,
                                             block_elements))
    if codec == "sparse":
        return _encode(packed, scan, plan_sparse(scan), name)
    coded = entropy_coded(packed, scan, name)
    if codec == "entropy":
        return coded
    # auto: the entropy codec's size is measured by coding; the sparse codec's is exact
    # without coding (sparse_payload_sizes), so only a winning sparse plan is coded; it
    # cannot win when its payloads alone (one bit per symbol and the value indices, at
    # least) reach the best size so far
    best = min(coded.nbytes, packed.nbytes)
    others = scan.numel - int(scan.histogram[scan.dominant])
    kinds = int(np.count_nonzero(scan.value_histogram()))
    if others * (1 + ((kinds - 1).bit_length() if kinds > 1 else 0)) / 8 >= best:
        return packed if packed.nbytes <= coded.nbytes else coded
    sparse = plan_sparse(scan)
    sparse_size = coded_nbytes(sparse.to_meta(), sparse_payload_sizes(sparse, scan))
    if sparse_size < packed.nbytes and sparse_size <= coded.nbytes:
        return _encode(packed, scan, sparse, name)
    return packed if packed.nbytes <= coded.nbytes else coded


def encode_codes(codes: Union[Tensor, np.ndarray], bits: int, codec: str = "auto", *,
                 minimum: float = 0.0, scale: float = 1.0, name: str = "codes",
                 block_elements: int = DEFAULT_BLOCK_ELEMENTS
                 ) -> Union[PackedTensor, CodedTensor]:
    """Integer ``codes`` of ``bits`` bits stored with ``codec``; codes outside
    :math:`[0, 2^b - 1]` are refused (``ValueError``), as by
    :func:`~sgquant.bitpack.pack_bits`."""
    data = pack_bits(codes, bits)
    shape = tuple(codes.shape) if codes.ndim else (1,)
    packed = PackedTensor(data, float(minimum), float(scale), bits, shape)
    return encode_group(packed, codec, name=name, block_elements=block_elements)
