"""Argument checks shared by the whole library: one place says what a valid integer,
number, choice or flag is, and every error names the argument and the bad value.

Every check returns the value normalised (``numpy`` integers become ``int`` ...)
and raises :class:`ValueError` otherwise, so the CLI can print it as one line.

    >>> check_int(3, "seeds", minimum=1)
    3
    >>> check_choice("gcn", "model", ("gcn", "agnn", "gat"))
    'gcn'
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Optional, Sequence, TypeVar

__all__ = ["check_int", "check_optional_int", "check_number", "check_choice", "check_bool",
           "check_int_list", "shorten"]

T = TypeVar("T")


def _is_int(value: Any) -> bool:
    # bool is an int subclass, numpy.bool_ is not Integral: both rejected as integers
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) \
        and type(value).__name__ != "bool_"


def _bounds(minimum: Optional[float], maximum: Optional[float]) -> str:
    if minimum is not None and maximum is not None:
        return f"in [{minimum}, {maximum}]"
    if minimum is not None:
        return f">= {minimum}"
    if maximum is not None:
        return f"<= {maximum}"
    return ""


def shorten(text: str, limit: int = 40) -> str:
    """``text``, or its first ``limit`` characters and its length, for a one-line error."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def check_int(value: Any, name: str, *, minimum: Optional[int] = None,
              maximum: Optional[int] = None) -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) within the bounds."""
    if not _is_int(value) or (minimum is not None and int(value) < minimum) \
            or (maximum is not None and int(value) > maximum):
        bounds = _bounds(minimum, maximum)
        raise ValueError(f"{name} must be an integer{' ' + bounds if bounds else ''}, "
                         f"got {value!r}")
    return int(value)


def check_optional_int(value: Any, name: str, *, minimum: Optional[int] = None,
                       maximum: Optional[int] = None) -> Optional[int]:
    """``None``, or :func:`check_int` of ``value``."""
    if value is None:
        return None
    try:
        return check_int(value, name, minimum=minimum, maximum=maximum)
    except ValueError:
        bounds = _bounds(minimum, maximum)
        raise ValueError(f"{name} must be None or an integer{' ' + bounds if bounds else ''}, "
                         f"got {value!r}") from None


def check_number(value: Any, name: str, *, minimum: Optional[float] = None,
                 maximum: Optional[float] = None, above: Optional[float] = None,
                 below: Optional[float] = None) -> float:
    """``value`` as a finite ``float`` (ints accepted, bools not) within the bounds:
    ``minimum``/``maximum`` inclusive, ``above``/``below`` exclusive."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and type(value).__name__ != "bool_" and math.isfinite(float(value))
    v = float(value) if ok else math.nan
    parts = []
    if minimum is not None:
        parts.append(f">= {minimum}")
        ok = ok and v >= minimum
    if above is not None:
        parts.append(f"> {above}")
        ok = ok and v > above
    if maximum is not None:
        parts.append(f"<= {maximum}")
        ok = ok and v <= maximum
    if below is not None:
        parts.append(f"< {below}")
        ok = ok and v < below
    if not ok:
        bounds = " and ".join(parts)
        raise ValueError(f"{name} must be a finite number{' ' + bounds if bounds else ''}, "
                         f"got {value!r}")
    return v


def check_choice(value: Any, name: str, choices: Sequence[T]) -> T:
    """``value`` if it is one of ``choices`` (compared with ``==``; strings exactly)."""
    for c in choices:
        if type(value) is type(c) and value == c:
            return c
    raise ValueError(f"unknown {name} {value!r}; choose one of "
                     f"{', '.join(repr(c) if not isinstance(c, str) else c for c in choices)}")


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is ``True`` or ``False`` (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_int_list(values: Any, name: str, *, minimum: Optional[int] = None,
                   maximum: Optional[int] = None, allow_empty: bool = False) -> list[int]:
    """A list of integers (each checked by :func:`check_int`), e.g. ``[1, 2, 4]``."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"{name} must be a list of integers, e.g. [1, 2, 4], got {values!r}")
    out = [check_int(v, f"{name} entry", minimum=minimum, maximum=maximum) for v in values]
    if not out and not allow_empty:
        raise ValueError(f"{name} must not be empty, e.g. [1, 2, 4]")
    return out
