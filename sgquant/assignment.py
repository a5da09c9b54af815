r"""Bit assignments: the one description of "which feature gets how many bits".

A :class:`BitAssignment` gives, for every layer :math:`k = 1..L` of a model,

* ``att_bits[k]`` -- the bits of the attention / edge coefficients
  :math:`\alpha^k` (component ``att``), and
* ``emb_bits[k][j]`` -- the bits of the layer's input embedding rows
  :math:`h^{k-1}_v` of the nodes :math:`v` in degree bucket :math:`j`
  (component ``emb``; ``J = 1`` bucket means no topology awareness).

``32`` means "kept in float32". The named constructors give the paper's
granularities (uniform, component-wise, topology-aware, layer-wise) and the
class itself is the full SGQuant form where everything varies at once.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from .bitwidth import FP32_BITS, check_bits
from .checks import check_int


@dataclass(frozen=True)
class BitAssignment:
    r"""Bits of every quantized feature of an ``L``-layer model.

    Args:
        att_bits: one entry per layer, the bits of :math:`\alpha^k`.
        emb_bits: one tuple per layer with one entry per degree bucket, the
            bits of the rows of :math:`h^{k-1}` in that bucket (bucket 0 holds
            the lowest-degree nodes).
    """

    att_bits: tuple[int, ...]
    emb_bits: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        try:
            att = tuple(self.att_bits)
            emb = tuple(tuple(row) for row in self.emb_bits)
        except TypeError as exc:
            raise ValueError(
                "BitAssignment needs att_bits as a list of ints (one per layer) and "
                "emb_bits as a list of lists (one per layer, one int per degree bucket), "
                f"got att_bits={self.att_bits!r}, emb_bits={self.emb_bits!r}") from exc
        if not att:
            raise ValueError("BitAssignment needs at least one layer, got att_bits=()")
        if len(emb) != len(att):
            raise ValueError(
                f"att_bits has {len(att)} layers but emb_bits has {len(emb)}: "
                "both need one entry per layer")
        widths = {len(row) for row in emb}
        if len(widths) != 1 or 0 in widths:
            raise ValueError(
                "every layer of emb_bits needs the same, non-zero number of degree "
                f"buckets, got {[len(row) for row in emb]}")
        att = tuple(check_bits(b) for b in att)
        emb = tuple(tuple(check_bits(b) for b in row) for row in emb)
        object.__setattr__(self, "att_bits", att)
        object.__setattr__(self, "emb_bits", emb)

    # ------------------------------------------------------------------ shape
    @property
    def num_layers(self) -> int:
        return len(self.att_bits)

    @property
    def num_buckets(self) -> int:
        return len(self.emb_bits[0])

    @property
    def is_fp32(self) -> bool:
        return all(b == FP32_BITS for b in self.att_bits) and all(
            b == FP32_BITS for row in self.emb_bits for b in row)

    def check_shape(self, num_layers: int, num_buckets: int | None = None) -> None:
        """Raise ``ValueError`` if this assignment does not fit a model of
        ``num_layers`` layers (and ``num_buckets`` degree buckets)."""
        if self.num_layers != num_layers:
            raise ValueError(
                f"BitAssignment has {self.num_layers} layers but the model has "
                f"{num_layers}: give one att/emb entry per layer")
        if num_buckets is not None and self.num_buckets not in (1, num_buckets):
            raise ValueError(
                f"BitAssignment has {self.num_buckets} degree buckets per layer but the "
                f"graph's degree buckets have {num_buckets}")

    def check_buckets(self, buckets: Any) -> None:
        """Raise ``ValueError`` unless ``buckets`` (a graph's ``DegreeBuckets`` or ``None``)
        fit: a topology-aware assignment needs buckets with as many buckets per layer."""
        if self.num_buckets == 1:
            return
        if buckets is None:
            raise ValueError(f"the assignment has {self.num_buckets} degree buckets per layer: "
                             "pass the graph's DegreeBuckets (buckets=...)")
        if buckets.num_buckets != self.num_buckets:
            raise ValueError(f"the assignment has {self.num_buckets} degree buckets per layer "
                             f"but the DegreeBuckets have {buckets.num_buckets}")

    # ---------------------------------------------------- named constructors
    @classmethod
    def uniform(cls, bits: int, num_layers: int, num_buckets: int = 1) -> "BitAssignment":
        """One bit width for every feature."""
        check_int(num_layers, "num_layers", minimum=1)
        check_int(num_buckets, "num_buckets", minimum=1)
        return cls((bits,) * num_layers, ((bits,) * num_buckets,) * num_layers)

    @classmethod
    def fp32(cls, num_layers: int, num_buckets: int = 1) -> "BitAssignment":
        """Everything kept in float32 (the unquantized model)."""
        return cls.uniform(FP32_BITS, num_layers, num_buckets)

    @classmethod
    def component_wise(cls, att_bits: int, emb_bits: int, num_layers: int,
                       num_buckets: int = 1) -> "BitAssignment":
        """CWQ: attention values and embeddings get different bits."""
        check_int(num_layers, "num_layers", minimum=1)
        check_int(num_buckets, "num_buckets", minimum=1)
        return cls((att_bits,) * num_layers, ((emb_bits,) * num_buckets,) * num_layers)

    @classmethod
    def topology_aware(cls, bucket_bits: Sequence[int], num_layers: int,
                       att_bits: int | None = None) -> "BitAssignment":
        """TAQ: embedding rows get bits by degree bucket (``bucket_bits[0]`` for
        the lowest-degree bucket). Attention keeps ``att_bits``, by default the
        largest of ``bucket_bits`` (TAQ alone does not exploit the attention's
        tolerance)."""
        check_int(num_layers, "num_layers", minimum=1)
        buckets = tuple(bucket_bits)
        if not buckets:
            raise ValueError("topology_aware needs at least one bucket width, got []")
        att = max(buckets) if att_bits is None else att_bits
        return cls((att,) * num_layers, (buckets,) * num_layers)

    @classmethod
    def layer_wise(cls, layer_bits: Sequence[int], num_buckets: int = 1) -> "BitAssignment":
        """LWQ: every feature of layer ``k`` gets ``layer_bits[k]``."""
        check_int(num_buckets, "num_buckets", minimum=1)
        layers = tuple(layer_bits)
        return cls(layers, tuple((b,) * num_buckets for b in layers))

    @classmethod
    def full(cls, att_bits: Sequence[int], emb_bits: Sequence[Sequence[int]]) -> "BitAssignment":
        """SGQuant's combined form: bits per component, layer and bucket."""
        return cls(tuple(att_bits), tuple(tuple(r) for r in emb_bits))

    # --------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, list]:
        return {"att_bits": list(self.att_bits),
                "emb_bits": [list(row) for row in self.emb_bits]}

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> "BitAssignment":
        if not isinstance(payload, Mapping):
            raise ValueError(f"a BitAssignment dict is needed, got {type(payload).__name__}")
        missing = {"att_bits", "emb_bits"} - set(payload)
        extra = set(payload) - {"att_bits", "emb_bits"}
        if missing or extra:
            raise ValueError(
                "a BitAssignment dict has exactly the keys 'att_bits' and 'emb_bits'; "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}")
        return cls(payload["att_bits"], payload["emb_bits"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "BitAssignment":
        if not isinstance(text, (str, bytes)):
            raise ValueError(f"a BitAssignment JSON text is needed, got {type(text).__name__}")
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"malformed BitAssignment JSON: {exc}") from exc
        except RecursionError:
            raise ValueError("malformed BitAssignment JSON: nested too deeply") from None
        return cls.from_dict(payload)

    def key(self) -> str:
        """A stable 16-hex-digit hash, the same in every process and version of Python."""
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:16]

    def flat(self) -> dict[str, int]:
        """Named fields (``att_L1``, ``emb_L1_B0`` ...) for tables and cost-model features."""
        out: dict[str, int] = {}
        for k, (att, row) in enumerate(zip(self.att_bits, self.emb_bits), start=1):
            out[f"att_L{k}"] = att
            for j, b in enumerate(row):
                out[f"emb_L{k}_B{j}"] = b
        return out

    def expand_buckets(self, num_buckets: int) -> "BitAssignment":
        """The same assignment written with ``num_buckets`` buckets per layer
        (a 1-bucket assignment repeats its single entry)."""
        if self.num_buckets == num_buckets:
            return self
        if self.num_buckets != 1:
            raise ValueError(
                f"cannot expand a {self.num_buckets}-bucket assignment to {num_buckets} buckets")
        return BitAssignment(self.att_bits, tuple(row * num_buckets for row in self.emb_bits))

    def __str__(self) -> str:
        layers = "; ".join(
            f"L{k}: att {a}, emb {'/'.join(map(str, row))}"
            for k, (a, row) in enumerate(zip(self.att_bits, self.emb_bits), start=1))
        return f"BitAssignment({layers})"


def as_assignment(value: BitAssignment | Mapping[str, Any] | str) -> BitAssignment:
    """Accept a :class:`BitAssignment`, its dict or its JSON text."""
    if isinstance(value, BitAssignment):
        return value
    if isinstance(value, str):
        return BitAssignment.from_json(value)
    if isinstance(value, Mapping):
        return BitAssignment.from_dict(value)
    raise ValueError(f"cannot read a BitAssignment from {type(value).__name__}: {value!r}")


def iter_fields(assignment: BitAssignment) -> Iterable[tuple[str, int, int | None, int]]:
    """Yield ``(component, layer, bucket, bits)`` for every field (layer is 1-based)."""
    for k, (att, row) in enumerate(zip(assignment.att_bits, assignment.emb_bits), start=1):
        yield "att", k, None, att
        for j, b in enumerate(row):
            yield "emb", k, j, b
