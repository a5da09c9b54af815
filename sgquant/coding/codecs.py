r"""The two block codecs of coded storage, how each group's plan is chosen, and what is
stored per group.

* **sparse** (no library): the run form of :mod:`.streams` at one fixed width :math:`w`
  per group (the :math:`w` that minimises :math:`w \cdot \#\text{symbols}`), then the
  codes of the non-dominant elements as indices into the group's table of the codes
  that occur, in :math:`\lceil \log_2 (\#\text{table}) \rceil` bits each (none when one
  code is left: a binary bag-of-words stores positions only). Block payload:
  ``uint32`` symbol count, symbols, indices.
* **entropy**: a lossless entropy coder over either the codes themselves (form
  ``codes``) or, for a group that one code fills at least half of, the run form (form
  ``runs``: run symbols, then the non-dominant codes). Two backends:

  - ``ans``: ``constriction``'s ANS coder (asymmetric numeral systems) with an order-0
    categorical model of each stream (:class:`~sgquant.coding.histogram.SymbolModel`,
    stored with the group); the run width :math:`w` is chosen by ideal code length;
  - ``zstd``: ``zstandard`` (level :data:`ZSTD_LEVEL`, Huffman/FSE entropy stages
    after LZ matching) over the codes as bytes, or over the run symbols at :math:`w = 8`
    (one byte each) followed by the non-dominant codes as bytes.

  Of the candidates (ANS sized by its ideal code length, model included; zstd sized by
  compressing), those within :data:`TOLERANCE` of the smallest count as equal, and the
  fastest to decode is kept: zstd, then ANS on the run form (fewest symbols first), then
  ANS on the codes. Block payload: (``runs``: ``uint32`` symbol count), then the ANS
  coder's 32-bit words or one zstd frame.

Every group's parameters are stored as bytes (:func:`pack_meta`): a few ``uint32``
fields (codec, form, backend, width, dominant code, rows per block) and arrays (value
table or models), so the bytes counted are the bytes decoded from.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .histogram import SymbolModel
from .scan import GroupCodes
from .streams import RUN_WIDTHS, escape_counts, escape_table, packed_len, run_histogram

__all__ = ["BLOCK_CODECS", "MODES", "BACKENDS", "RUNS_MIN_SHARE", "TOLERANCE", "ZSTD_LEVEL",
           "ZSTD_RUN_WIDTH", "pack_meta", "unpack_meta", "Plan", "plan_sparse",
           "sparse_payload_sizes", "ans_plan"]

#: Block codecs, with their id in the stored header.
BLOCK_CODECS: dict[str, int] = {"sparse": 1, "entropy": 2}
#: What the entropy codec codes: the codes, or the run form.
MODES: tuple[str, ...] = ("codes", "runs")
#: Entropy coders behind the entropy codec.
BACKENDS: tuple[str, ...] = ("ans", "zstd")
#: A group is tried in run form when its dominant code fills at least this share.
RUNS_MIN_SHARE: float = 0.5
#: Entropy candidates within this share of the smallest size count as equal (then the
#: fastest to decode is kept).
TOLERANCE: float = 0.02
#: zstd's compression level (its default).
ZSTD_LEVEL: int = 3
#: Run width of the zstd run form: one byte per symbol.
ZSTD_RUN_WIDTH: int = 8
_DTYPES = {"B": np.dtype("<u1"), "H": np.dtype("<u2"), "I": np.dtype("<u4")}


# ------------------------------------------------------------------ stored header
def pack_meta(fields: tuple[int, ...], arrays: list[np.ndarray]) -> bytes:
    """``fields`` (``uint32`` each) and ``arrays`` (``uint8``/``uint16``/``uint32``,
    each with a one-byte type and a ``uint32`` length) as bytes."""
    out = [struct.pack("<BB", len(fields), len(arrays)), struct.pack(f"<{len(fields)}I", *fields)]
    for a in arrays:
        char = next(c for c, d in _DTYPES.items() if d == a.dtype.newbyteorder("<"))
        out += [struct.pack("<cI", char.encode(), a.size), a.astype(_DTYPES[char]).tobytes()]
    return b"".join(out)


def unpack_meta(meta: bytes) -> tuple[tuple[int, ...], list[np.ndarray]]:
    """Inverse of :func:`pack_meta`."""
    nf, na = struct.unpack_from("<BB", meta, 0)
    pos = 2
    fields = struct.unpack_from(f"<{nf}I", meta, pos)
    pos += 4 * nf
    arrays = []
    for _ in range(na):
        char, size = struct.unpack_from("<cI", meta, pos)
        pos += 5
        dtype = _DTYPES[char.decode()]
        arrays.append(np.frombuffer(meta, dtype=dtype, count=size, offset=pos).copy())
        pos += size * dtype.itemsize
    if pos != len(meta):
        raise ValueError(f"group header has {len(meta)} bytes, its fields {pos}")
    return tuple(fields), arrays


# ------------------------------------------------------------------------ plans
@dataclass(eq=False)
class Plan:
    """How a group is coded: ``codec``, ``mode`` (form), ``backend``, run ``width``,
    ``dominant`` code, rows per block, ``values`` (sparse: the table of non-dominant
    codes) and the ANS ``models``."""

    codec: str
    mode: str
    width: int
    dominant: int
    block_rows: int
    backend: str = "ans"
    values: Optional[np.ndarray] = None
    models: tuple[SymbolModel, ...] = ()
    _lookup: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def value_width(self) -> int:
        """Bits of a sparse value index (0 when at most one code is left)."""
        n = 0 if self.values is None else int(self.values.size)
        return (n - 1).bit_length() if n > 1 else 0

    def value_index(self, values: np.ndarray) -> np.ndarray:
        """Indices of ``values`` in the sparse value table."""
        if self._lookup is None:
            top = int(self.values.max()) + 1 if self.values.size else 1
            self._lookup = np.zeros(top, np.int64)
            self._lookup[self.values] = np.arange(self.values.size)
        return self._lookup[values]

    @property
    def label(self) -> str:
        """``sparse``, or the entropy coder and form (``ans/runs`` ...)."""
        return self.codec if self.codec == "sparse" else f"{self.backend}/{self.mode}"

    def to_meta(self) -> bytes:
        fields = (BLOCK_CODECS[self.codec], MODES.index(self.mode),
                  BACKENDS.index(self.backend), self.width, self.dominant, self.block_rows)
        arrays: list[np.ndarray] = []
        if self.values is not None:
            arrays.append(self.values.astype("<u2"))
        for m in self.models:
            arrays += m.to_arrays()
        return pack_meta(fields, arrays)

    @classmethod
    def from_meta(cls, meta: bytes) -> "Plan":
        fields, arrays = unpack_meta(meta)
        codec_id, mode, backend, width, dominant, block_rows = fields
        codec = next(k for k, v in BLOCK_CODECS.items() if v == codec_id)
        common = (codec, MODES[mode], width, dominant, block_rows, BACKENDS[backend])
        if codec == "sparse":
            return cls(*common, values=arrays[0])
        models = tuple(SymbolModel.from_arrays(*arrays[i:i + 3])
                       for i in range(0, len(arrays), 3))
        return cls(*common, models=models)


def plan_sparse(scan: GroupCodes) -> Plan:
    """The sparse plan: the run width of fewest symbol bits, the value table."""
    gap_hist = scan.gap_histogram()
    escapes = escape_table(gap_hist)
    count = int(gap_hist.sum())
    best = min(RUN_WIDTHS, key=lambda w: w * (count + escapes[w]))
    values = np.flatnonzero(scan.value_histogram())
    return Plan("sparse", "runs", best, scan.dominant, scan.block_rows, values=values)


def sparse_payload_sizes(plan: Plan, scan: GroupCodes) -> list[int]:
    """The payload bytes of every block under a sparse ``plan``, without coding it
    (what the block encoder writes: 4 + symbols + value indices)."""
    sizes = []
    for gaps, _ in scan.runs():
        nsym = gaps.size + escape_counts(gaps, plan.width)
        sizes.append(4 + packed_len(nsym, plan.width) + packed_len(gaps.size, plan.value_width))
    return sizes


def ans_plan(scan: GroupCodes) -> tuple[Plan, float]:
    """The ANS plan and its ideal size in bytes (model and per-block words included):
    of the forms (codes; runs at each width) within :data:`TOLERANCE` of the smallest,
    the one that decodes the fewest symbols."""
    hist = scan.histogram
    model = SymbolModel.of_histogram(hist)
    block_bytes = 8 * scan.num_blocks  # the coder's final state, about
    codes_plan = Plan("entropy", "codes", 0, scan.dominant, scan.block_rows, models=(model,))
    options = [(model.ideal_bits(hist) / 8 + model.nbytes + block_bytes, scan.numel,
                codes_plan)]
    if scan.dominant_share >= RUNS_MIN_SHARE:
        gap_hist = scan.gap_histogram()
        vhist = scan.value_histogram()
        vmodel = SymbolModel.of_histogram(vhist)
        vbytes = vmodel.ideal_bits(vhist) / 8 + vmodel.nbytes + 4 * scan.num_blocks
        escapes = escape_table(gap_hist)
        for w in RUN_WIDTHS:
            rhist = run_histogram(gap_hist, w, escapes[w])
            rmodel = SymbolModel.of_histogram(rhist)
            size = rmodel.ideal_bits(rhist) / 8 + rmodel.nbytes + vbytes + block_bytes
            options.append((size, int(rhist.sum() + vhist.sum()),
                            Plan("entropy", "runs", w, scan.dominant, scan.block_rows,
                                 models=(rmodel, vmodel))))
    least = min(size for size, _, _ in options)
    near = [o for o in options if o[0] <= (1 + TOLERANCE) * least]
    size, _, plan = min(near, key=lambda o: (o[1], o[0]))
    return plan, size + len(plan.to_meta())


def zstd_plans(scan: GroupCodes) -> list[Plan]:
    """The zstd plans worth measuring: the codes, and the run form when one code fills
    at least :data:`RUNS_MIN_SHARE` of the group."""
    plans = [Plan("entropy", "codes", 0, scan.dominant, scan.block_rows, backend="zstd")]
    if scan.dominant_share >= RUNS_MIN_SHARE:
        plans.append(Plan("entropy", "runs", ZSTD_RUN_WIDTH, scan.dominant, scan.block_rows,
                          backend="zstd"))
    return plans
