"""Exact and compensated arithmetic: two-term sums, and the one ``log1p`` (and softplus) every cost uses."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxloss import _backend


def two_sum(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """:math:`a + b = s + e` exactly, with :math:`s` the rounded sum (Knuth's TwoSum).

    XLA does not reassociate floating-point additions, so the error term survives compilation.
    """
    total = a + b
    b_part = total - a
    a_part = total - b_part
    return total, (a - a_part) + (b - b_part)


def one_minus(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """:math:`1 - x = r + e` exactly for :math:`|x| \\le 1`, with :math:`r` rounded (Fast2Sum)."""
    one = _backend.computed_one(x)
    rest = one - x
    return rest, (one - rest) - x


def log1p(x: jax.Array) -> jax.Array:
    """:math:`\\log(1 + x)` for :math:`x > -1`, to about 1.5 ulp in float32 and float64.

    .. math::
      \\log1p(x) = \\log u + \\frac{x - (u - 1)}{u}, \\qquad u = 1 \\oplus x

    :math:`u - 1` is exact, so the second term restores what rounding :math:`u` lost. It replaces
    XLA's ``log1p``, which on the CPU is off by up to 2.3 ulp in float32 for x in [0.1, 1] and
    up to 128 ulp in float64 for x in [-0.5, -0.3] (measured against mpmath).

    :math:`u - 1` is formed as :math:`4 (u/4 - 1/4)` from :math:`u/2 = x/2 \\oplus 1/2`: the
    halves and quarters are exact scalings, the subtraction is exact for :math:`u \\le 2^{23}`,
    and XLA can neither fold it back into ``x`` nor share a literal 1 with another fusion
    (``_backend``, rules 1 and 2), so a sum of these stays one fused reduction.
    """
    half_total = 0.5 * x + 0.5  # u / 2, rounded once
    total = half_total + half_total
    total_less_one = (0.5 * half_total - 0.25) * 4.0
    return jnp.log(total) + (x - total_less_one) / total


def softplus(x: jax.Array) -> jax.Array:
    """:math:`\\log(1 + e^x) = \\max(x, 0) + \\log1p(e^{-|x|})`, a sum of non-negative terms."""
    return jnp.maximum(x, 0.0) + log1p(jnp.exp(-jnp.abs(x)))
