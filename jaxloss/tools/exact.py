"""Ground truth for ``jaxloss verify``: every cost, its seeds and their limits, in mpmath.

The floating inputs are taken as exact. Each function returns mpmath numbers (``mpf`` or
``±inf``) for one example: ``(loss, grad_inputs, grad_labels)``, where the gradient lists have
one entry per class (or ``None`` for integer labels). The policies are those of the library:
``0 log 0 = 0``, ``-inf`` logits are masked classes (zero probability, zero gradient for the
logit and its label), an all ``-inf`` row costs 0, ``+inf`` logits are taken as limits, and the
probability clamp of ``_clamp.clamp_probs``.

``softmax_parts`` gives the exact differences ``z_j - max z`` and probabilities from which
the verification allows for the rounding of those differences.

The costs beyond the article, with their hyperparameters as the compute dtype rounds them:
``focal`` (the sigmoid focal loss; infinite logits as limits), ``poly`` (poly-1, a positive
label on a masked class costs ``+inf``) and ``kl`` (both KL divergences; ``0 log 0 = 0``, a
``-inf`` log-target a zero-probability class with zero gradients). Their ``*_scales`` give the
sums of magnitudes of the terms of values that are sums of terms of opposite signs, in which
the verification scores them.
"""

from __future__ import annotations

import functools
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


# --- beyond the article: focal, poly-1 and the Kullback-Leibler divergences -----------------------


def _focal_limit(zm: Any, ym: Any, gamma: Any, alpha: Any) -> tuple[Any, list[Any], list[Any]]:
    """The focal loss and its seeds at an infinite logit, as limits.

    At :math:`z = +\\infty`, :math:`q = 1 - y` and :math:`\\mathrm{ce} \\approx (1 - y) z`: for
    :math:`y < 1` the loss is :math:`+\\infty`, the logit seed :math:`a_t (1 - y)^{\\gamma + 1}`
    (the slope term :math:`\\sigma(z)\\sigma(-z)\\mathrm{ce}/q` vanishes) and the label seed
    :math:`(1 - y)^\\gamma z\\,[-(1 + \\gamma) a_t + (2\\alpha - 1)(1 - y)]`, infinite with the
    sign of the bracket (NaN, undecided here, where the bracket is 0); for :math:`y = 1` all
    three are 0 (:math:`q^\\gamma` decays exponentially), but for :math:`\\gamma = 0` the label
    seed is :math:`-a_t z`. :math:`z = -\\infty` is the mirror image, with :math:`y` for
    :math:`1 - y`: the label seed :math:`y^\\gamma |z|\\,[(1 + \\gamma) a_t + (2\\alpha - 1) y]`.
    """
    weight = 1 if alpha is None else alpha * ym + (1 - alpha) * (1 - ym)
    tilt = 0 if alpha is None else 2 * alpha - 1
    wrong = (1 - ym) if zm > 0 else ym  # the label weight that the logit rules out
    sign = 1 if zm > 0 else -1  # sign of z
    if wrong == 0:
        label = 0 if gamma > 0 or weight == 0 else -sign * weight * INF
        return mp.mpf(0), [mp.mpf(0)], [mp.mpf(label)]
    loss = INF if weight > 0 else mp.mpf(0)
    grad = sign * weight * wrong ** (gamma + 1)
    # The label seed is |z| wrong^gamma times this: -sign (1 + gamma) a_t from the bracket, and
    # (2 alpha - 1) wrong from the weight's slope (ce ~ wrong |z| on either side).
    coefficient = -sign * (1 + gamma) * weight + tilt * wrong
    label = coefficient * INF if coefficient != 0 else mp.nan
    return loss, [grad], [label]


def _focal_terms(z: float, y: float, gamma: Any, alpha: Any) -> tuple[Any, list[Any], list[Any]]:
    """The focal loss at a finite logit, and the terms its two seeds sum (see :func:`focal`)."""
    zm, ym = _m(z), _m(y)
    up, down = 1 / (1 + mp.exp(-zm)), 1 / (1 + mp.exp(zm))  # sigma(z), sigma(-z)
    q = (1 - ym) * up + ym * down  # 1 - p_t, positive
    ce = ym * _softplus(-zm) + (1 - ym) * _softplus(zm)
    weight = 1 if alpha is None else alpha * ym + (1 - alpha) * (1 - ym)
    power = mp.power(q, gamma)
    outer = weight * power
    grad_terms = [outer * (1 - ym) * up, -outer * ym * down, outer * gamma * (1 - 2 * ym) * up * down * ce / q]
    label_terms = [-outer * zm, -outer * gamma * mp.tanh(zm / 2) * ce / q]
    if alpha is not None:
        label_terms.append((2 * alpha - 1) * power * ce)
    return outer * ce, grad_terms, label_terms


def focal(z: float, y: float, gamma: float, alpha: float | None) -> tuple[Any, list[Any], list[Any]]:
    """Element-wise sigmoid focal loss :math:`a_t q^\\gamma \\mathrm{ce}` and its two seeds.

    With :math:`q = 1 - p_t = (1 - y)\\sigma(z) + y\\sigma(-z)` (a sum of non-negative terms, so
    50 digits hold at any logit), :math:`a_t = \\alpha y + (1 - \\alpha)(1 - y)` (1 for ``alpha``
    None) and :math:`\\mathrm{ce}` the sigmoid cross-entropy:

    .. math::
      \\frac{\\partial \\ell}{\\partial z} = a_t q^\\gamma \\left[(1 - y)\\sigma(z) - y\\sigma(-z)
        + \\gamma (1 - 2y) \\frac{\\sigma(z)\\sigma(-z)}{q}\\mathrm{ce}\\right], \\qquad
      \\frac{\\partial \\ell}{\\partial y} = a_t q^\\gamma \\left[-z
        - \\gamma \\tanh(z/2) \\frac{\\mathrm{ce}}{q}\\right] + (2\\alpha - 1) q^\\gamma \\mathrm{ce}.

    ``gamma`` and ``alpha`` are the hyperparameters as the compute dtype rounds them. Infinite
    logits are limits (:func:`_focal_limit`).
    """
    zm, ym = _m(z), _m(y)
    g, a = _m(gamma), None if alpha is None else _m(alpha)
    if mp.isinf(zm):
        return _focal_limit(zm, ym, g, a)
    loss, grad_terms, label_terms = _focal_terms(z, y, g, a)
    return loss, [mp.fsum(grad_terms)], [mp.fsum(label_terms)]


def focal_scales(z: float, y: float, gamma: float, alpha: float | None) -> tuple[Any, list[Any], list[Any]]:
    """The sums of the magnitudes of the terms of :func:`focal`'s seeds: the logit seed's
    :math:`a_t q^\\gamma [q + \\gamma |1 - 2y| \\sigma(z)\\sigma(-z)\\mathrm{ce}/q]` and the
    label seed's :math:`a_t q^\\gamma [|z| + \\gamma |\\tanh(z/2)| \\mathrm{ce}/q] + |2\\alpha - 1|
    q^\\gamma \\mathrm{ce}`; ``None`` at an infinite logit (scored in ulps there)."""
    if not np.isfinite(z):
        return None, [None], [None]
    _, grad_terms, label_terms = _focal_terms(z, y, _m(gamma), None if alpha is None else _m(alpha))
    return None, [mp.fsum(abs(t) for t in grad_terms)], [mp.fsum(abs(t) for t in label_terms)]


def _excess(t: Any) -> Any:
    """:math:`h = \\log1p(T) - T/(1 + T) \\ge 0` for :math:`T \\ge 0`, without cancellation: a
    series :math:`\\sum_{n \\ge 2} (-1)^n \\frac{n - 1}{n} T^n` below :math:`T = 10^{-5}`."""
    if t < mp.mpf("1e-5"):
        terms: list[Any] = []
        power, n = t * t, 2
        while n == 2 or abs(power) > terms[0] * mp.mpf("1e-55"):
            terms.append((-1) ** n * power * (n - 1) / n)
            power, n = power * t, n + 1
        return mp.fsum(terms)
    return mp.log1p(t) - t / (1 + t)


def poly_parts(logits: np.ndarray, epsilon: float) -> tuple[tuple[Any, ...], ...]:
    """Per class of one row: :math:`d_j = z_j - \\max z` (:func:`softmax_parts`), :math:`p_j`,
    :math:`1 - p_j`, :math:`\\phi_j = -\\log p_j + \\epsilon(1 - p_j)` and
    :math:`c_j = 1 + \\epsilon p_j`, each without cancellation; memoised (the sweep asks for the
    parts of a row three times).

    With :math:`T_j = \\sum_{k \\ne j} e^{z_k - z_j}` (``+inf`` at a class of zero
    probability): :math:`p_j = 1/(1 + T_j)`, :math:`1 - p_j = T_j/(1 + T_j)` (:math:`T/S` at the
    arg-max) and :math:`\\phi_j = (1 + \\epsilon)(1 - p_j) + h_j` with :math:`h_j = -\\log p_j -
    (1 - p_j) \\ge 0` from :func:`_excess`, a sum of non-negative terms for
    :math:`\\epsilon \\ge -1`; :math:`c_j = (1 + \\epsilon) - \\epsilon (1 - p_j)` where
    :math:`p_j > 1/2`.
    """
    return _poly_parts(np.asarray(logits, np.float64).tobytes(), float(epsilon))  # float64 holds every input


@functools.lru_cache(maxsize=4096)
def _poly_parts(data: bytes, epsilon: float) -> tuple[tuple[Any, ...], ...]:
    logits = np.frombuffer(data, dtype=np.float64)
    eps = _m(epsilon)
    d, _ = softmax_parts(logits)
    exps = [mp.mpf(0) if v == -INF else mp.exp(v) for v in d]
    total = mp.fsum(exps)
    probs, rests, phis, weights = [], [], [], []
    for j, dj in enumerate(d):
        if dj == -INF:
            p, r, phi = mp.mpf(0), mp.mpf(1), INF
        else:
            # Off the arg-max S - e_j >= 1 >= e_j: no cancellation; at it, the sum of the others.
            others = mp.fsum(e for k, e in enumerate(exps) if k != j) if dj == 0 else total - exps[j]
            t = others / exps[j]
            p, r = 1 / (1 + t), t / (1 + t)
            phi = (1 + eps) * r + _excess(t)
        probs.append(p)
        rests.append(r)
        phis.append(phi)
        weights.append((1 + eps) - eps * r if p > 0.5 else 1 + eps * p)
    return tuple(d), tuple(probs), tuple(rests), tuple(phis), tuple(weights)


def poly(logits: np.ndarray, labels: Any, epsilon: float) -> tuple[Any, list[Any], list[Any]]:
    """Poly-1 loss :math:`\\sum_j y_j \\phi_j` and its seeds, from :func:`poly_parts`.

    The logit seed :math:`p_k \\sum_j y_j c_j - y_k c_k` is formed as
    :math:`p_k \\sum_{j \\ne k} y_j c_j - y_k c_k (1 - p_k)` (no cancellation at a confident
    arg-max), the label seed is :math:`\\phi_j`, 0 at a masked (``-inf``) class; an all
    ``-inf`` row costs 0. ``epsilon`` is as the compute dtype rounds it.
    """
    masked = [v == -np.inf for v in np.asarray(logits)]
    y = [_m(v) for v in labels]
    if all(masked):
        zeros = [mp.mpf(0)] * len(y)
        return mp.mpf(0), zeros, zeros
    _, probs, rests, phis, weights = poly_parts(logits, epsilon)
    loss = mp.fsum(0 if yj == 0 else yj * phi for yj, phi in zip(y, phis, strict=True))
    terms = [yj * cj for yj, cj in zip(y, weights, strict=True)]
    total = mp.fsum(terms)
    grad = []
    for k, term in enumerate(terms):
        # The sum without term k: a difference where that term is at most half the sum.
        big = abs(term) > abs(total) / 2
        others = mp.fsum(t for j, t in enumerate(terms) if j != k) if big else total - term
        grad.append(probs[k] * others - term * rests[k])
    grad_labels = [mp.mpf(0) if m else phi for m, phi in zip(masked, phis, strict=True)]
    return loss, grad, grad_labels


def poly_scales(logits: np.ndarray, labels: Any, epsilon: float) -> tuple[Any, list[Any], list[Any]]:
    """Sums of magnitudes of terms of :func:`poly`'s values (``None``: scored in ulps).

    The logit seed: :math:`p_k \\sum_j y_j |c_j| + y_k |c_k|`. The label seed :math:`\\phi_j`:
    for :math:`\\epsilon < 0` and :math:`p_j < 1/2` the terms :math:`-\\log p_j` and
    :math:`\\epsilon (1 - p_j)` have opposite signs and no cancellation-free form is known (at
    :math:`\\epsilon = -1` they cancel by up to a factor of 6), so
    :math:`-\\log p_j + |\\epsilon| (1 - p_j)`; elsewhere ``None`` (for :math:`p_j \\ge 1/2`,
    :math:`\\phi_j = (1 + \\epsilon)(1 - p_j) + h_j` is a sum of non-negative terms). The loss:
    :math:`\\sum_j y_j s_j`, :math:`s_j` that scale or :math:`\\phi_j`, where some labelled class has
    a scale; else ``None``.
    """
    _, probs, rests, phis, weights = poly_parts(logits, epsilon)
    eps = _m(epsilon)
    y = [_m(v) for v in labels]
    total = mp.fsum(yj * abs(cj) for yj, cj in zip(y, weights, strict=True))
    grad = [pk * total + yk * abs(ck) for pk, yk, ck in zip(probs, y, weights, strict=True)]
    label: list[Any] = []
    for p, r, phi in zip(probs, rests, phis, strict=True):
        split = eps < 0 and p < 0.5 and mp.isfinite(phi)
        label.append((phi - eps * r) + abs(eps) * r if split else None)  # phi - eps r = -log p
    scaled = any(yj != 0 and sj is not None for yj, sj in zip(y, label, strict=True))
    finite = all(yj == 0 or mp.isfinite(phi) for yj, phi in zip(y, phis, strict=True))
    loss = None
    if scaled and finite:
        loss = mp.fsum(yj * (phi if sj is None else sj) for yj, phi, sj in zip(y, phis, label, strict=True) if yj != 0)
    masked = [v == -np.inf for v in np.asarray(logits)]
    return loss, grad, [None if m else sj for m, sj in zip(masked, label, strict=True)]


def kl(log_predictions: Any, targets: Any, log_targets: bool = False) -> tuple[Any, list[Any], list[Any]]:
    """Kullback-Leibler divergence :math:`\\sum_j t_j (\\log t_j - \\log p_j)` of one row and its seeds.

    The seeds are :math:`-t_j` for the log-predictions and :math:`\\log t_j - \\log p_j + 1` for
    the targets, or :math:`t_j (\\log t_j - \\log p_j + 1)` for log-targets (``log_targets``:
    ``targets`` holds :math:`\\log t`). ``0 log 0 = 0``: a target of 0 (a log-target of
    ``-inf``) costs 0 with zero seeds for both arguments; a positive target against a ``-inf``
    log-prediction costs ``+inf``, with a target seed of ``+inf``. There is no flush convention:
    :math:`t = e^{\\log t}` is exact, subnormal or smaller, and every term counts (a finite
    log-target against a ``-inf`` log-prediction costs ``+inf`` however small its probability).
    """
    loss, grad, grad_targets = kl_terms(log_predictions, targets, log_targets)
    total = INF if INF in loss else mp.fsum(loss)
    return total, grad, grad_targets


def kl_terms(log_predictions: Any, targets: Any, log_targets: bool = False) -> tuple[list[Any], list[Any], list[Any]]:
    """:func:`kl` with the loss as its terms :math:`t_j (\\log t_j - \\log p_j)`, one a class."""
    loss, grad, grad_targets = [], [], []
    for lp, second in zip(np.asarray(log_predictions), np.asarray(targets), strict=True):
        lpm, sm = _m(lp), _m(second)
        t = mp.exp(sm) if log_targets else sm
        if t == 0:  # exp(-inf) = 0 in mpmath: a -inf log-target
            loss.append(mp.mpf(0))
            grad.append(mp.mpf(0))
            grad_targets.append(mp.mpf(0))
            continue
        grad.append(-t)
        if lpm == -INF:
            loss.append(INF)
            grad_targets.append(INF)
            continue
        diff = (sm if log_targets else mp.log(t)) - lpm
        loss.append(t * diff)
        grad_targets.append(t * (diff + 1) if log_targets else diff + 1)
    return loss, grad, grad_targets


def kl_scales(log_predictions: Any, targets: Any, log_targets: bool = False) -> tuple[Any, list[Any], list[Any]]:
    """The sums of magnitudes of the terms of :func:`kl` (``None`` where a value is infinite or
    a target 0, scored in ulps there).

    The loss: :math:`\\sum_j t_j (|\\log t_j| + |\\log p_j|)` for targets, whose logarithm is
    rounded once before the difference (the terms :math:`t_j \\log t_j` and :math:`-t_j \\log p_j`),
    and :math:`\\sum_j |t_j (\\log t_j - \\log p_j)|` for log-targets, whose difference is one
    rounding of the inputs. The target seed: :math:`|\\log t_j| + |\\log p_j| + 1`, or
    :math:`t_j (|\\log t_j - \\log p_j| + 1)` for log-targets. The log-prediction seed
    :math:`-t_j` is in ulps.
    """
    loss_terms: list[Any] = []
    label: list[Any] = []
    for lp, second in zip(np.asarray(log_predictions), np.asarray(targets), strict=True):
        lpm, sm = _m(lp), _m(second)
        t = mp.exp(sm) if log_targets else sm
        if t == 0 or lpm == -INF:
            label.append(None)
            loss_terms.append(INF if t != 0 else mp.mpf(0))
            continue
        if log_targets:
            diff = abs(sm - lpm)
            loss_terms.append(t * diff)
            label.append(t * (diff + 1))
        else:
            logs = abs(mp.log(t)) + abs(lpm)
            loss_terms.append(t * logs)
            label.append(logs + 1)
    loss = None if INF in loss_terms else mp.fsum(loss_terms)
    return loss, [None] * len(label), label
