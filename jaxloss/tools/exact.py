"""Ground truth for ``jaxloss verify``: every cost, its seeds and their limits, in mpmath.

The floating inputs are taken as exact. Each function returns mpmath numbers (``mpf`` or
``±inf``) for one example: ``(loss, grad_inputs, grad_labels)``, where the gradient lists have
one entry per class (or ``None`` for integer labels). The policies are those of the library:
``0 log 0 = 0``, ``-inf`` logits are masked classes (zero probability, zero gradient for the
logit and its label), an all ``-inf`` row costs 0, ``+inf`` logits are taken as limits, and the
probability clamp of ``_clamp.clamp_probs``.

``softmax_parts`` gives the exact differences ``z_j - max z`` and probabilities from which
the verification allows for the rounding of those differences.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import mpmath as mp
import numpy as np

mp.mp.dps = 50
INF = mp.inf


def _m(x: Any) -> Any:
    return mp.mpf(float(x))


def _softplus(z: mp.mpf) -> mp.mpf:
    """log(1 + e^z), for finite z."""
    return z + mp.log1p(mp.exp(-z)) if z > 0 else mp.log1p(mp.exp(z))


def sigmoid(z: float, y: float) -> tuple[mp.mpf, list[mp.mpf], list[mp.mpf]]:
    """Element-wise sigmoid cross-entropy and its seeds sigma(z) - y and -z."""
    zm, ym = _m(z), _m(y)
    if mp.isinf(zm):
        wrong = (1 - ym) if zm > 0 else ym  # the weight on the label that the logit rules out
        loss = 0 if wrong == 0 else INF
        prob = 1 if zm > 0 else 0
        return mp.mpf(loss), [prob - ym], [-zm]
    loss = ym * _softplus(-zm) + (1 - ym) * _softplus(zm)
    # sigma(z) - y = (1 - y) sigma(z) - y sigma(-z): no cancellation at 50 digits for hard labels.
    grad = (1 - ym) / (1 + mp.exp(-zm)) - ym / (1 + mp.exp(zm))
    return loss, [grad], [-zm]


def softmax_parts(logits: np.ndarray) -> tuple[list[Any], list[Any]]:
    """Exact differences ``z_j - max z`` (0 at every arg-max, ``-inf`` at masked classes) and
    the softmax probabilities."""
    z = [_m(v) for v in np.asarray(logits)]
    top = max(z)
    d = [mp.mpf(0) if v == top else v - top for v in z]
    finite = [v for v in d if v != -INF]
    total = mp.fsum(mp.exp(v) for v in finite) if finite else mp.mpf(1)
    return d, [mp.mpf(0) if v == -INF else mp.exp(v) / total for v in d]


def softmax(logits: np.ndarray, labels: Any) -> tuple[Any, list[Any], list[Any]]:
    """Soft-label softmax cross-entropy and its seeds a * sum(y) - y and -log a.

    Written without cancellation, so 50 digits suffice at any scale:
    :math:`-\\log p_j = \\log1p(\\sum_{k \\ne j} e^{z_k - z_j})` (or ``log S - d_j`` off the
    arg-max, a sum of non-negative terms) and
    :math:`p_j \\sum y - y_j = p_j \\sum_{k \\ne j} y_k - y_j \\sum_{k \\ne j} p_k`.
    """
    masked = [v == -np.inf for v in np.asarray(logits)]
    y = [_m(v) for v in labels]
    if all(masked):
        zeros = [mp.mpf(0)] * len(y)
        return mp.mpf(0), zeros, zeros
    d, probs = softmax_parts(logits)
    exps = [mp.mpf(0) if v == -INF else mp.exp(v) for v in d]  # the arg-max terms are exactly 1
    neg_log_p = []
    for j, dj in enumerate(d):
        if dj == -INF:
            neg_log_p.append(INF)
        elif dj == 0:
            others = mp.fsum(e for k, e in enumerate(exps) if k != j)
            neg_log_p.append(mp.log1p(others))
        else:
            neg_log_p.append(mp.log(mp.fsum(exps)) - dj)
    loss = mp.fsum(0 if yj == 0 else yj * nl for yj, nl in zip(y, neg_log_p, strict=True))
    grad = []
    for j in range(len(y)):
        other_labels = mp.fsum(yk for k, yk in enumerate(y) if k != j)
        other_probs = mp.fsum(pk for k, pk in enumerate(probs) if k != j)
        grad.append(probs[j] * other_labels - y[j] * other_probs)
    grad_labels = [mp.mpf(0) if m else nl for m, nl in zip(masked, neg_log_p, strict=True)]
    return loss, grad, grad_labels


def softmax_integer(logits: np.ndarray, label: int) -> tuple[mp.mpf, list[mp.mpf], None]:
    """Integer-label softmax cross-entropy and its seed a - onehot."""
    onehot = [1.0 if j == label else 0.0 for j in range(len(logits))]
    loss, grad, _ = softmax(logits, onehot)
    return loss, grad, None


def _clamped(a: float, dtype: np.dtype) -> tuple[mp.mpf, mp.mpf]:
    info = jnp.finfo(dtype)
    am = _m(a)
    low = max(am, _m(info.smallest_normal))
    high = min(am, 1 - _m(info.epsneg))
    return low, high


def binary_probs(a: float, y: float, dtype: np.dtype) -> tuple[mp.mpf, list[mp.mpf], list[mp.mpf]]:
    """Binary cross-entropy of a probability, under the clamp policy, and its seeds."""
    low, high = _clamped(a, dtype)
    ym = _m(y)
    pos = 0 if ym == 0 else ym * mp.log(low)
    neg = 0 if ym == 1 else (1 - ym) * mp.log1p(-high)
    both = min(low, 1 - _m(jnp.finfo(dtype).epsneg))  # a clamped to [tiny, 1 - eps/2]
    grad = (both - ym) / (both * (1 - both))
    return -(pos + neg), [grad], [mp.log1p(-both) - mp.log(both)]


def categorical_probs(
    probs: Sequence[float], labels: Sequence[float], dtype: np.dtype
) -> tuple[mp.mpf, list[mp.mpf], list[mp.mpf]]:
    """Categorical cross-entropy of probabilities, under the clamp policy, and its seeds."""
    tiny = _m(jnp.finfo(dtype).smallest_normal)
    low = [max(_m(a), tiny) for a in probs]
    y = [_m(v) for v in labels]
    loss = -mp.fsum(0 if yj == 0 else yj * mp.log(aj) for aj, yj in zip(low, y, strict=True))
    return loss, [-yj / aj for aj, yj in zip(low, y, strict=True)], [-mp.log(aj) for aj in low]
