"""The search space: every :class:`~sgquant.assignment.BitAssignment` of a model on a graph,
written as bit vectors over named fields, and a deterministic sampler of it.

A configuration is a vector of bits over :attr:`SearchSpace.fields` (the order of
:meth:`BitAssignment.flat`: ``att_L1, emb_L1_B0, ..., att_L2, ...``). Vectors are
compared and de-duplicated as whole rows with :func:`row_codes` (each bit width fits a
byte, so a row packs into a few 64-bit words), :func:`first_unique` and
:func:`fields_apart`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from ..assignment import BitAssignment, as_assignment
from ..checks import check_int
from ..memory import FeatureLayout
from ..profiles import DEFAULT_BIT_CHOICES
from ..quantize import ALLOWED_BITS, FP32_BITS, check_bits

__all__ = ["SearchSpace", "Sampler", "check_bit_choices", "row_codes", "first_unique",
           "fields_apart", "SpaceIndex"]


def check_bit_choices(bit_choices: Any) -> tuple[int, ...]:
    """``bit_choices`` as a sorted tuple of distinct allowed widths (1..16 or 32)."""
    if bit_choices is None:
        return DEFAULT_BIT_CHOICES
    if isinstance(bit_choices, (str, bytes)) or not isinstance(bit_choices, Iterable):
        raise ValueError(f"bit_choices must be a list of bit widths from {ALLOWED_BITS}, "
                         f"got {bit_choices!r}")
    out = []
    for b in bit_choices:
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b not in ALLOWED_BITS:
            raise ValueError(f"bit choice {b!r} is not allowed; choose from "
                             f"{', '.join(map(str, ALLOWED_BITS))}")
        out.append(int(b))
    if not out:
        raise ValueError("bit_choices is empty; give at least one of "
                         f"{', '.join(map(str, ALLOWED_BITS))}")
    return tuple(sorted(set(out)))


def row_codes(rows: np.ndarray) -> np.ndarray:
    """Rows of bit widths (each <= 32, so one byte) packed into ``ceil(F / 8)`` uint64
    words per row: equal rows have equal codes, and codes sort like the rows' bytes."""
    v = np.asarray(rows)
    n, f = v.shape
    words = -(-f // 8)
    packed = np.zeros((n, 8 * words), dtype=np.uint8)
    packed[:, :f] = v
    return packed.view(np.uint64).reshape(n, words)


_LOW_BIT_OF_EACH_BYTE = np.uint64(0x0101010101010101)


def fields_apart(codes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """How many fields differ between each row of ``codes`` and each row of ``others``
    (both from :func:`row_codes`), shape ``(len(codes), len(others))``: the number of
    nonzero bytes of their XOR (each byte's bits folded onto its lowest bit, then
    counted)."""
    x = codes[:, None, :] ^ others[None, :, :]
    for shift in (4, 2, 1):
        x |= x >> np.uint64(shift)
    return np.bitwise_count(x & _LOW_BIT_OF_EACH_BYTE).sum(axis=-1)


def first_unique(codes: np.ndarray, skip: int = 0) -> np.ndarray:
    """Indices (``>= skip``, ascending) of the rows of ``codes`` (from :func:`row_codes`)
    that occur for the first time; a row equal to one of the first ``skip`` rows (an
    excluded set put in front) is never returned. Rows are hashed (pandas), not sorted."""
    if not len(codes):
        return np.zeros(0, dtype=np.int64)
    rows = pd.Index(codes[:, 0]) if codes.shape[1] == 1 else pd.DataFrame(codes)
    first = np.flatnonzero(~np.asarray(rows.duplicated(keep="first")))
    return first[first >= skip].astype(np.int64)


@dataclass(frozen=True)
class SpaceIndex:
    """Positions of a space's fields, computed once per space: ``att`` (one per layer),
    ``emb`` (layer x bucket), ``free`` (fields the search chooses) and ``base`` (a vector
    with the fixed fields at their value, free ones at 0)."""

    names: tuple[str, ...]
    att: np.ndarray
    emb: np.ndarray
    free: np.ndarray
    base: np.ndarray


@dataclass(frozen=True)
class SearchSpace:
    """All :class:`BitAssignment` of an ``num_layers``-layer model with
    ``num_buckets`` degree buckets, each free field taking a value of
    ``bit_choices``; ``fixed`` fields (e.g. the ``att`` of a layer without
    edges, which stores nothing) keep their given value.

    A configuration is also written as a vector of bits over :attr:`fields`
    (the order of :meth:`BitAssignment.flat`).
    """

    num_layers: int
    num_buckets: int
    bit_choices: tuple[int, ...] = DEFAULT_BIT_CHOICES
    fixed: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        check_int(self.num_layers, "num_layers", minimum=1)
        check_int(self.num_buckets, "num_buckets", minimum=1)
        object.__setattr__(self, "bit_choices", check_bit_choices(self.bit_choices))
        names = tuple(BitAssignment.uniform(FP32_BITS, self.num_layers, self.num_buckets).flat())
        fixed = tuple(sorted((str(k), int(v)) for k, v in dict(self.fixed).items()))
        for name, bits in fixed:
            if name not in names:
                raise ValueError(f"fixed field {name!r} is not a field of this space; "
                                 f"fields are {', '.join(names)}")
            check_bits(bits)
        object.__setattr__(self, "fixed", fixed)

    @classmethod
    def from_layout(cls, layout: FeatureLayout,
                    bit_choices: Optional[Sequence[int]] = None) -> "SearchSpace":
        """The space of a model on a graph: fields that store no element (a
        layer without edge coefficients, an empty degree bucket) are fixed at 32."""
        fixed = {}
        for k, spec in enumerate(layout.layers, start=1):
            if spec.num_edges * spec.heads == 0:
                fixed[f"att_L{k}"] = FP32_BITS
            for j, n in enumerate(layout.bucket_sizes):
                if n * spec.in_dim == 0:
                    fixed[f"emb_L{k}_B{j}"] = FP32_BITS
        return cls(layout.num_layers, len(layout.bucket_sizes), check_bit_choices(bit_choices),
                   tuple(fixed.items()))

    @property
    def index(self) -> SpaceIndex:
        """Field positions (:class:`SpaceIndex`), computed once per space."""
        return _space_index(self)

    @property
    def fields(self) -> tuple[str, ...]:
        return self.index.names

    @property
    def free_fields(self) -> tuple[str, ...]:
        fixed = dict(self.fixed)
        return tuple(f for f in self.fields if f not in fixed)

    @property
    def size(self) -> int:
        """Number of distinct configurations."""
        return len(self.bit_choices) ** len(self.free_fields)

    def assignment(self, vector: Sequence[int]) -> BitAssignment:
        """The :class:`BitAssignment` of a bit vector over :attr:`fields`."""
        idx = self.index
        v = [int(b) for b in vector]
        if len(v) != len(idx.names):
            raise ValueError(f"a configuration vector needs {len(idx.names)} entries "
                             f"({', '.join(idx.names)}), got {len(v)}")
        return BitAssignment.full([v[i] for i in idx.att],
                                  [[v[i] for i in row] for row in idx.emb])

    def vector(self, assignment: "BitAssignment | dict") -> np.ndarray:
        """The bit vector of ``assignment`` (checked to lie in this space)."""
        a = as_assignment(assignment)
        a.check_shape(self.num_layers)
        flat = a.expand_buckets(self.num_buckets).flat()
        v = np.array([flat[f] for f in self.fields], dtype=np.int64)
        fixed = dict(self.fixed)
        for f, b in zip(self.fields, v):
            allowed = (fixed[f],) if f in fixed else self.bit_choices
            if int(b) not in allowed:
                raise ValueError(f"field {f} = {int(b)} bits is outside the search space; "
                                 f"allowed: {', '.join(map(str, allowed))}")
        return v

    def fp32_vector(self) -> np.ndarray:
        """Every field at 32 bits (the FP32 model), fixed fields at their value."""
        out = self.index.base.copy()
        out[self.index.free] = FP32_BITS
        return out

    def random_vectors(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniform random bit vectors (rows), possibly repeated."""
        idx = self.index
        out = np.repeat(idx.base[None, :], n, axis=0)
        choices = np.asarray(self.bit_choices, dtype=np.int64)
        out[:, idx.free] = choices[rng.integers(0, len(choices), size=(n, idx.free.size))]
        return out

    def all_vectors(self) -> np.ndarray:
        """Every configuration of the space, one row each (only for small spaces)."""
        idx = self.index
        choices = np.asarray(self.bit_choices, dtype=np.int64)
        grid = np.stack(np.meshgrid(*[choices] * idx.free.size, indexing="ij"), axis=-1)
        rows = np.repeat(idx.base[None, :], self.size, axis=0)
        rows[:, idx.free] = grid.reshape(-1, idx.free.size)
        return rows


@lru_cache(maxsize=64)
def _space_index(space: SearchSpace) -> SpaceIndex:
    names = tuple(BitAssignment.uniform(FP32_BITS, space.num_layers, space.num_buckets).flat())
    att = np.array([names.index(f"att_L{k}") for k in range(1, space.num_layers + 1)])
    emb = np.array([[names.index(f"emb_L{k}_B{j}") for j in range(space.num_buckets)]
                    for k in range(1, space.num_layers + 1)], dtype=np.int64)
    fixed = dict(space.fixed)
    free = np.array([i for i, f in enumerate(names) if f not in fixed], dtype=np.int64)
    base = np.array([fixed.get(f, 0) for f in names], dtype=np.int64)
    for a in (att, emb, free, base):
        a.setflags(write=False)
    return SpaceIndex(names, att, emb, free, base)


class Sampler:
    """Uniform random configurations of a :class:`SearchSpace`: a deterministic
    stream for a seed, never repeating a configuration (nor one in ``exclude``)."""

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        self.space = space
        self.seed = check_int(seed, "seed", minimum=0)
        self.rng = np.random.default_rng(self.seed)
        self._seen: set[bytes] = set()

    def draw(self, n: int, exclude: Iterable[np.ndarray] = ()) -> list[BitAssignment]:
        """The next ``n`` distinct configurations of the stream."""
        n = check_int(n, "n", minimum=0)
        seen = self._seen | {np.asarray(v, dtype=np.int64).tobytes() for v in exclude}
        if n > self.space.size - len(seen):
            raise ValueError(f"cannot draw {n} new configurations: the search space has "
                             f"{self.space.size} and {len(seen)} are already taken")
        out = []
        while len(out) < n:
            # one row at a time: the stream's prefix does not depend on n
            v = self.space.random_vectors(self.rng, 1)[0]
            key = v.tobytes()
            if key in seen:
                continue
            seen.add(key)
            self._seen.add(key)
            out.append(self.space.assignment(v))
        return out
