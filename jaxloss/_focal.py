"""The modulating factor of the focal loss and the ratios its seeds need: the one place each is computed.

With :math:`q = 1 - p_t = (1 - y)\\,\\sigma(z) + y\\,\\sigma(-z)` (a sum of non-negative terms),
the focal loss is :math:`\\ell = a_t\\, q^\\gamma\\, \\mathrm{ce}` and its seeds need
:math:`q^\\gamma`, :math:`\\mathrm{ce}/q` and :math:`\\sigma(z)\\sigma(-z)\\,\\mathrm{ce}/q`.

For a hard label (0 or 1) write :math:`x = z` for :math:`y = 1` and :math:`x = -z` for
:math:`y = 0`, so that :math:`q = \\sigma(-x)` and, with :math:`u = e^{-|x|}`,

.. math::
  \\log q = -\\max(x, 0) - \\log1p(u).

:math:`\\max(x, 0)` is exact, so :math:`q^\\gamma = \\exp(\\gamma \\log q)` is formed with the
exact product :math:`\\gamma \\max(x, 0)` and a two-term sum: a confident prediction
(:math:`x = 20`, :math:`\\gamma \\log q \\approx -40`) keeps its digits, where rounding
:math:`\\gamma \\log q` alone would cost 40 ulp. :math:`q^\\gamma` underflows to 0 only where
the exact value does, even for :math:`\\gamma < 1` past the point where :math:`q` itself
underflows, and the ratios are read without :math:`q`: :math:`\\sigma(z)\\sigma(-z)/q = \\sigma(x)`
and :math:`\\mathrm{ce}/q = (1 + u) \\log1p(u)/u` for :math:`x > 0` (a series below
:math:`u = 2^{-10}`).

Soft labels keep :math:`q` from 0 (:math:`q \\ge \\min(y, 1 - y)/2`), so there the factor is
:math:`\\exp(\\gamma \\log q)` of the sum :math:`q` itself.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxloss import _backend, _compensated


class FocalParts(NamedTuple):
    """What the focal loss and its seeds share, element-wise.

    Attributes:
      ce: the cross-entropy :math:`a|z| + \\log1p(u)`, from the compensated exponential.
      ce_low: the rest of the cross-entropy, a two-term sum with ``ce`` (0 where it is infinite).
      factor: :math:`q^\\gamma` (to a working precision, with ``factor_low``), times
        :math:`2^{64}` where ``scale`` is :math:`2^{-64}`.
      factor_low: the rest of :math:`q^\\gamma`, a two-term sum with ``factor``.
      scale: 1, or :math:`2^{-64}` where :math:`q^\\gamma` is within :math:`2^{60}` of the
        smallest normal number: products with the factor are scaled by it last, so that
        :math:`q^\\gamma z` is not lost to a flushed subnormal.
      ce_over_q: :math:`\\mathrm{ce}/q`, finite wherever :math:`\\mathrm{ce}` is.
      slope: :math:`\\sigma(z)\\sigma(-z)\\,\\mathrm{ce}/q`, finite everywhere (0 at infinite logits).
    """

    ce: jax.Array
    ce_low: jax.Array
    factor: jax.Array
    factor_low: jax.Array
    scale: jax.Array
    ce_over_q: jax.Array
    slope: jax.Array


def parts(logits: jax.Array, labels: jax.Array, gamma: jax.Array) -> FocalParts:
    """:class:`FocalParts` of logits, labels in [0, 1] and ``gamma`` >= 0.

    With :math:`u = e^{-|z|}` (a two-term sum) and the label weights on the two sides,
    :math:`a = 1 - y,\\ b = y` for :math:`z \\ge 0` and :math:`a = y,\\ b = 1 - y` below:
    :math:`q = (a + b u)/(1 + u)` and :math:`\\mathrm{ce} = a|z| + \\log1p(u)`, non-negative
    terms. Where :math:`a = 0` (a hard label the logit agrees with) :math:`\\log q = -|z| -
    \\log1p(u)` with :math:`-|z|` exact; elsewhere :math:`\\log(a + b u)` is a corrected
    logarithm (:func:`_compensated.log_with_error`) of a compensated sum. Then
    :math:`q^\\gamma = \\exp(\\gamma \\log q)`, the product exact and the exponential compensated.
    """
    largest = jnp.finfo(logits.dtype).max
    magnitude = jnp.abs(logits)
    u, u_low = _compensated.exp_with_error(-magnitude)
    one_plus_u, one_plus_u_error = _compensated.two_sum(_backend.computed_one(u), u)
    log1p_head, log1p_u_low = _compensated.log_with_error(one_plus_u, one_plus_u_error + u_low)
    log1p_u = log1p_head + log1p_u_low  # rounded once: within half an ulp
    rest, rest_error = _compensated.one_minus(labels)  # 1 - y, exactly
    nonnegative = logits >= 0
    a, a_low = jnp.where(nonnegative, rest, labels), jnp.where(nonnegative, rest_error, 0.0)
    b, b_low = jnp.where(nonnegative, labels, rest), jnp.where(nonnegative, 0.0, rest_error)
    agrees = a == 0  # q = u / (1 + u): the confident, right side of a hard label
    # a|z|, 0 where a = 0; the error of a = 1 - y multiplies a finite |z| (a|z| is +inf at +-inf).
    capped = jnp.minimum(magnitude, largest / 2.0**28)  # where the split of the product cannot overflow
    _, product_error = _compensated.two_product(a, capped)
    linear = jnp.where(agrees, 0.0, _backend.unfused_product(a, magnitude))  # its error is product_error
    linear_low = jnp.where(agrees, 0.0, (product_error + a_low * jnp.minimum(magnitude, largest)))
    ce, ce_error = _compensated.two_sum(linear, log1p_head)
    ce_low = jnp.where(jnp.isfinite(ce), ce_error + (linear_low + log1p_u_low), 0.0)
    # log(a + b u), a two-term sum; 0 where a = 1 and b = 0.
    bu, bu_error = _compensated.two_product(b, u)
    total, total_error = _compensated.two_sum(a, bu)
    total_low = total_error + (bu_error + (a_low + (b * u_low + b_low * u)))
    log_total, log_total_low = _compensated.log_with_error(jnp.where(agrees, 1.0, total), total_low)
    # log q = log(a + b u) - log1p(u), or -|z| - log1p(u) where a = 0 (capped: q^gamma is 0 there).
    head = jnp.where(agrees, -jnp.minimum(magnitude, largest / 2.0**28), log_total)
    head_low = jnp.where(agrees, 0.0, log_total_low)
    log_q, log_q_error = _compensated.two_sum(head, -log1p_head)
    exponent, product_error = _compensated.two_product(gamma, log_q)
    error = product_error + gamma * (log_q_error + (head_low - log1p_u_low))
    # Within 2^60 of the smallest normal number, q^gamma is formed 2^64 times larger.
    tiny = exponent < jnp.log(jnp.finfo(logits.dtype).smallest_normal) + 60.0
    shifted, shift_error = _compensated.two_sum(exponent, jnp.where(tiny, 64.0 * _compensated.LN2_HIGH, 0.0))
    # The low part of 64 ln 2 (9e-5) goes into the exponent, not into the first-order error term.
    shifted, low_shift_error = _compensated.two_sum(shifted, jnp.where(tiny, 64.0 * _compensated.LN2_LOW, 0.0))
    error = error + (shift_error + low_shift_error)
    power, power_low = _compensated.exp_with_error(shifted)
    # ce / q = ce (1 + u) / (a + b u); where a = 0 it is (1 + u) log1p(u)/u, a series below 2^-10
    # (1 - u/2 + u^2/3 - u^3/4 + u^4/5, error below u^5/6), finite where u underflows.
    series = 1.0 + u * (-0.5 + u * (1.0 / 3.0 + u * (-0.25 + u * 0.2)))
    log1p_ratio = jnp.where(u > 2.0**-10, log1p_u / jnp.where(u > 2.0**-10, u, 1.0), series)
    safe_total = jnp.where(agrees, 1.0, total)
    ce_over_q = jnp.where(agrees, (1.0 + u) * log1p_ratio, ce * ((1.0 + u) / safe_total))
    # sigma(z) sigma(-z) = u / (1 + u)^2; where a = 0 the slope is log1p(u) / (1 + u).
    general_slope = u * jnp.minimum(ce_over_q, largest) / jnp.square(1.0 + u)
    slope = jnp.where(agrees, log1p_u / (1.0 + u), general_slope)
    return FocalParts(
        ce,
        ce_low,
        power,
        power_low + power * error,
        jnp.where(tiny, 2.0**-64, 1.0),
        ce_over_q,
        slope,
    )


def class_weight(alpha: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """:math:`a_t = \\alpha y + (1 - \\alpha)(1 - y)` as a two-term sum (each product and difference exact)."""
    positive, positive_error = _compensated.two_product(alpha, labels)
    keep, keep_error = _compensated.one_minus(alpha)
    rest, rest_error = _compensated.one_minus(labels)
    negative, negative_error = _compensated.two_product(keep, rest)
    total, total_error = _compensated.two_sum(positive, negative)
    low = total_error + (positive_error + (negative_error + (keep * rest_error + keep_error * rest)))
    return total, low
