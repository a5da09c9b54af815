r"""Which scored candidates to measure next: the acquisition rule of a cost-model step.

:func:`select_candidates` ranks candidates by the expected improvement of the saving
under the accuracy constraint (with the model's uncertainty), or by the plain rule
(largest saving predicted within tolerance), hedged with the most probably feasible
improvements and restricted first to a trust region.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .candidates import ACCURACY_SLACK

__all__ = ["select_candidates", "alternate"]


def select_candidates(predicted: np.ndarray, saving: np.ndarray, threshold: float, n: int,
                      best_saving: float = 0.0, hedge: bool = True,
                      allowed: Optional[np.ndarray] = None,
                      upper: Optional[np.ndarray] = None,
                      spread: Optional[np.ndarray] = None,
                      noise: float = 0.003) -> np.ndarray:
    r"""Indices of the ``n`` candidates to measure next.

    With ``spread`` (the model's uncertainty per candidate), the acquisition is
    the expected improvement under the accuracy constraint,

    .. math::

        \text{EI}(a) = \big(\text{saving}(a) - \text{best}\big)_+ \cdot
        P\big(\text{acc}(a) \ge \text{threshold}\big),\quad
        P = \Phi\Big(\frac{\hat{acc}(a) - \text{threshold}}
        {\sqrt{\text{spread}^2 + \text{noise}^2}}\Big),

    so a large saving is not bought with a needless risk (lowering a field
    that saves little). The candidates are taken by EI; with ``hedge`` every
    second pick is instead the most probably feasible improving one, so that
    one wrong belief of the model cannot waste a whole round.

    Without ``spread`` (the plain rule): the useful candidates are those that
    could be within tolerance (optimistic prediction ``upper``, default ``predicted``,
    :math:`\ge` ``threshold``) and would beat ``best_saving`` (the largest
    feasible saving measured so far). They are taken largest saving first;
    with ``hedge`` every second pick is instead the most confident one (highest
    ``predicted`` accuracy, itself within tolerance), so that one wrong belief
    of the model cannot waste a whole round. If fewer than ``n`` are useful, the other improving
    candidates follow by predicted accuracy (those closest to the tolerance),
    then the rest by predicted accuracy (ties keep the candidates' order).
    With an ``allowed`` mask (the trust region of :func:`cost_model_step`),
    allowed candidates come first, ranked as above, then the others.
    """
    predicted, saving = np.asarray(predicted, float), np.asarray(saving, float)
    upper = predicted if upper is None else np.maximum(np.asarray(upper, float), predicted)
    if allowed is not None:
        allowed = np.asarray(allowed, dtype=bool)
        out = []
        for part in (np.flatnonzero(allowed), np.flatnonzero(~allowed)):
            k = n - sum(len(o) for o in out)
            if k > 0 and len(part):
                out.append(part[select_candidates(
                    predicted[part], saving[part], threshold, k, best_saving, hedge,
                    upper=upper[part], spread=None if spread is None else spread[part],
                    noise=noise)])
        return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)
    n = min(int(n), len(predicted))
    head = 2 * n  # a queue of alternate() yields n picks and skips n taken: 2n suffice
    idx = np.arange(len(predicted))
    improving = saving > best_saving * (1 + 1e-12)
    if spread is not None:
        from scipy.special import ndtr

        sigma = np.maximum(np.sqrt(np.asarray(spread, float) ** 2 + float(noise) ** 2), 1e-12)
        prob = ndtr((predicted - threshold) / sigma)
        gain = np.where(improving, saving - best_saving, 0.0)
        ei = gain * prob
        queues = [idx[improving][np.lexsort((-prob[improving], -ei[improving]))][:head]]
        if hedge:
            queues.append(idx[improving][np.lexsort((-gain[improving],
                                                     -prob[improving]))][:head])
        picks = np.array(alternate(queues, n), dtype=np.int64)
        if len(picks) >= n:
            return picks[:n]
        rest = idx[~improving][np.argsort(-predicted[~improving], kind="stable")]
        return np.concatenate([picks, rest])[:n].astype(np.int64)
    ok = improving & (upper >= threshold - ACCURACY_SLACK)
    sure = improving & (predicted >= threshold - ACCURACY_SLACK)
    bold = idx[ok][np.lexsort((-predicted[ok], -saving[ok]))][:head]
    safe = idx[sure][np.lexsort((-saving[sure], -predicted[sure]))][:head] if hedge else []
    picks = np.array(alternate([bold, safe] if hedge else [bold], n), dtype=np.int64)
    if len(picks) >= n:
        return picks[:n]
    rest = improving & ~ok  # ties (a model that has seen no difference) keep their order
    second = idx[rest][np.argsort(-predicted[rest], kind="stable")]
    third = idx[~improving][np.argsort(-predicted[~improving], kind="stable")]
    order = np.concatenate([picks, second, third])
    return order[:n].astype(np.int64)


def alternate(queues: "list[Sequence[int]]", n: int) -> list[int]:
    """Up to ``n`` distinct items taken in turn from the front of each queue."""
    queues = [list(map(int, q)) for q in queues]
    picks: list[int] = []
    taken: set[int] = set()
    heads = [0] * len(queues)
    turn = 0
    while len(picks) < n and any(h < len(q) for h, q in zip(heads, queues)):
        k = turn % len(queues)
        queue = queues[k]
        while heads[k] < len(queue) and queue[heads[k]] in taken:
            heads[k] += 1
        if heads[k] < len(queue):
            picks.append(queue[heads[k]])
            taken.add(queue[heads[k]])
            heads[k] += 1
        turn += 1
    return picks
