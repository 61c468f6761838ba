"""Exact and compensated arithmetic: two-term sums, and the one ``log1p`` (and softplus) every cost uses."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

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
    """:math:`\\log(1 + x)` for finite :math:`x > -1`, to 1.66 ulp in float32 and 1.33 in float64, arithmetic only.

    .. math::
      \\log1p(x) = \\log u + \\frac{x - (u - 1)}{u}, \\qquad u = 1 \\oplus x

    :math:`u - 1` is exact, so the second term restores what rounding :math:`u` lost. It replaces
    XLA's ``log1p``, which on the CPU is off by up to 2.27 ulp in float32 on [0.1, 1] and 128 ulp
    in float64 on [-0.5, -0.3] (all measured against mpmath on 32,000 points of [-0.99, 1e7]).

    :math:`u - 1` is formed as :math:`4 (u/4 - 1/4)` from :math:`u/2 = x/2 \\oplus 1/2`: the
    halves and quarters are exact scalings, the subtraction is exact for :math:`u \\le 2^{23}`,
    and XLA can neither fold it back into ``x`` nor share a literal 1 with another fusion
    (``_backend``, rules 1 and 2), so a sum of these stays one fused reduction. For one value
    per row, :func:`log1p_row` is more accurate.
    """
    half_total = 0.5 * x + 0.5  # u / 2, rounded once
    total = half_total + half_total
    total_less_one = (0.5 * half_total - 0.25) * 4.0
    return jnp.log(total) + (x - total_less_one) / total


def log1p_row(x: jax.Array) -> jax.Array:
    """:math:`\\log(1 + x)` of per-row values: within 0.62 ulp on [0, 1], else :func:`log1p`.

    A row statistic such as :math:`\\log1p(T)` is computed once per row, so its select and
    series cost nothing measurable, and the 1 ulp it saves is what keeps a loss within 2 ulp
    where the sum :math:`T` already carries one (the float16 rows of ``jaxloss verify --full``:
    2.04 ulp with :func:`log1p`). Not for sums over classes: the select breaks XLA-CPU's fused
    reduction (``_backend``, rule 1).
    """
    unit = (x >= 0) & (x <= 1)
    return jnp.where(unit, log1p_unit(jnp.where(unit, x, 0.0)), log1p(x))


def log1p_unit(x: jax.Array) -> jax.Array:
    """:math:`\\log(1 + x)` for x in [0, 1], within 0.62 ulp in float32 and 0.63 in float64.

    .. math::
      \\log1p(x) = 2 \\operatorname{atanh} \\frac{t}{2}
      = t + \\frac{t^3}{12} + \\frac{t^5}{80} + \\cdots
      = \\sum_{k \\ge 0} \\frac{t^{2k+1}}{(2k+1)\\,4^k},
      \\qquad t = \\frac{x}{1 + x/2} \\le \\frac{2}{3}

    :math:`1 + x/2` is carried as an exact two-term sum and the quotient corrected for it, so
    only the leading :math:`t` rounds at full weight; the series needs 8 terms in float32 and 18
    in float64. :math:`t` is as small as :math:`x`, never subnormal for a normal ``x`` (XLA-CPU
    flushes subnormals to zero). Measured against mpmath on 26,000 points of [0, 1] (``x`` down
    to 1e-30). Inside a sum over classes it made XLA-CPU write three arrays of the logits' size
    (``tests/test_transforms.py``), so the sums use :func:`log1p`.
    """
    half = 0.5 * x
    one = _backend.computed_one(x)
    denominator, denominator_error = two_sum(one, half)  # 1 + x/2, exactly
    t = x / denominator
    t_low = ((x - t * denominator) - t * denominator_error) / denominator
    square = t * t
    terms = 18 if x.dtype == jnp.float64 else 7
    series = (1.0 / ((2 * terms + 1) * 4.0**terms)) * square + 1.0 / ((2 * terms - 1) * 4.0 ** (terms - 1))
    for k in range(terms - 2, 0, -1):
        series = 1.0 / ((2 * k + 1) * 4.0**k) + square * series
    return t + (t_low + t * square * series)


def softplus(x: jax.Array) -> jax.Array:
    """:math:`\\log(1 + e^x) = \\max(x, 0) + \\log1p(e^{-|x|})`, a sum of non-negative terms."""
    return jnp.maximum(x, 0.0) + log1p(jnp.exp(-jnp.abs(x)))


def two_product(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """:math:`a b = p + e` exactly, with :math:`p` the rounded product (Dekker's TwoProduct).

    Each factor is split into two halves of at most half the significand, whose four products
    are exact. Valid for :math:`|a|, |b|` below the largest float over :math:`2^{s}+1`
    (:math:`s = 12` in float32, 27 in float64), where the split cannot overflow. The product is
    :func:`_backend.unfused_product`: a reader that fused it into a multiply-add would see the
    exact :math:`ab` and count :math:`e` twice.
    """
    product = _backend.unfused_product(a, b)
    a_high, a_low = _split(a)
    b_high, b_low = _split(b)
    error = ((a_high * b_high - product) + a_high * b_low + a_low * b_high) + a_low * b_low
    return product, error


def _divide_cpu(a: jax.Array, b: jax.Array) -> jax.Array:
    return _backend.divide_by_row(a, b)


@_backend.per_platform(cpu=_divide_cpu)
def divide(a: jax.Array, b: jax.Array) -> jax.Array:
    """:math:`a / b` within about 0.5 ulp whatever the division's lowering, for finite quotients of normal size.

    .. math::
      q = a \\oslash b, \\qquad q b = p + e \\text{ exactly}, \\qquad
      \\frac{a}{b} = q + \\frac{(a - p) - e}{b}

    XLA-GPU lowers a float32 division to ``div.full.f32``, up to 2 ulp (its NVPTX back end is
    given ``-nvptx-prec-divf32=1``; all nine divisions in the deviceless H200 PTX of the poly
    loss, jax 0.10.2). The residual :math:`a - p` is exact (Sterbenz), so the correction's own
    rounding is of a term near one ulp of :math:`q`. XLA-CPU divides correctly rounded (with
    :func:`_backend.divide_by_row`'s guard), so its form is that division alone; the forms agree
    within one rounding.
    """
    quotient = a / b
    product, error = two_product(quotient, b)
    return quotient + ((a - product) - error) / b


@_backend.per_platform(cpu=jnp.exp)
def exp_rounded(x: jax.Array) -> jax.Array:
    """:math:`e^x` within about 0.51 ulp for :math:`x \\le 0` (float32, float64): :func:`exp_with_error`'s parts, added.

    XLA-GPU's float32 ``exp`` is libdevice's ``__nv_expf`` (``ex2.approx.ftz.f32`` after a
    reduction; up to 2 ulp). XLA-CPU's is within 0.96 ulp (200,000 points of [-5, 5]) and
    costs a fraction of this, so its form is ``exp``; the forms agree within one ulp.
    """
    high, low = exp_with_error(x)
    return high + low


def _exp_times_cpu(log_t: jax.Array, x: jax.Array) -> jax.Array:
    half = jnp.exp(0.5 * log_t)
    return half * (half * x)


@_backend.per_platform(cpu=_exp_times_cpu)
def exp_times(log_t: jax.Array, x: jax.Array) -> jax.Array:
    """:math:`e^{\\log t} x` without forming a subnormal :math:`e^{\\log t}` where the product is normal.

    .. math::
      e^{\\log t} x = h (h x), \\qquad h = e^{\\log t / 2} \\quad (\\log t < \\log \\text{tiny} + 1)

    A subnormal :math:`t` keeps few digits where a platform keeps subnormals (XLA-GPU) and is 0
    where it flushes them (XLA-CPU), while :math:`t x` may be normal. The halving is exact and
    :math:`h` is normal wherever the product is. XLA-CPU's form is :math:`h (h x)` everywhere:
    arithmetic only, one ``exp`` (``_backend``, rule 1), 2.1 ulp a term in float32 and 2.3 in
    float64 with :math:`e^{\\log t} x`, 3.2 and 3.8 as :math:`h (h x)` (2,000 points of
    :math:`[-30, 0]^2`); at 1024x4096 float32 a KL sum took 8.5 ms, 7.9 with :math:`e^{\\log t} x`,
    16 ms choosing between them by an arithmetic indicator. The portable form selects. The
    forms agree within 3 ulp.
    """
    half = jnp.exp(0.5 * log_t)
    below = log_t < float(np.log(jnp.finfo(log_t.dtype).smallest_normal)) + 1.0
    return jnp.where(below, half * (half * x), jnp.exp(log_t) * x)


def _split(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """:math:`x = h + l` with :math:`h` and :math:`l` each of at most half the significand (Veltkamp)."""
    factor = 2.0 ** ((jnp.finfo(x.dtype).nmant + 2) // 2) + 1.0
    scaled = factor * x
    high = scaled - (scaled - x)
    return high, x - high


def exp_with_error(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """:math:`e^x = h + l` for :math:`x \\le 88` (709 in float64), to about :math:`2^{-7}` ulp of :math:`h`.

    XLA's ``exp`` is off by up to 0.96 ulp in float32 on the CPU (measured on 200,000 points of
    [-5, 5]); where a result is raised to a power the error is multiplied by it. Here
    :math:`x = -k \\ln 2 + r` with :math:`|r| \\le \\ln 2 / 2` (Cody and Waite: :math:`k \\ln 2`
    in two parts, the first exact), :math:`e^r = (1 + r) + r^2 P(r)` with the Taylor tail
    :math:`P` rounded only at the size of :math:`r^2/2`, :math:`1 + r` an exact two-term sum, and
    the scaling by :math:`2^{-k}` exact (0 below the smallest normal number).
    """
    wide = x.dtype == jnp.float64
    high_part, low_part = (_LN2_HIGH_64, _LN2_LOW_64) if wide else (_LN2_HIGH_32, _LN2_LOW_32)
    x = jnp.maximum(x, -1400.0 if wide else -170.0)  # e^x is 0 below; 2^-k in two normal halves
    k = jnp.round(x * (-1.0 / math.log(2.0)))
    reduced, reduced_error = two_sum(x + k * high_part, k * low_part)  # x + k ln 2, in [-ln2/2, ln2/2]
    terms = 14 if wide else 8
    tail = jnp.full_like(reduced, 1.0 / math.factorial(terms))
    for n in range(terms - 1, 1, -1):
        tail = 1.0 / math.factorial(n) + reduced * tail
    one = _backend.computed_one(x)
    head, head_error = two_sum(one, reduced)
    low = head_error + reduced * reduced * tail
    high, high_error = two_sum(head, low)
    low = high_error + high * reduced_error  # e^(r + e) = e^r (1 + e)
    first = jnp.floor(-0.5 * k)
    scale, rest = _power_of_two(first), _power_of_two(-k - first)
    return (high * scale) * rest, (low * scale) * rest


def _power_of_two(n: jax.Array) -> jax.Array:
    """:math:`2^n` for integer-valued ``n`` within the normal exponents, built from its bits.

    ``jnp.ldexp`` lowers to a power on XLA-CPU, which it writes out as an array of its own.
    """
    info = jnp.finfo(n.dtype)
    bits = jnp.int64 if n.dtype == jnp.float64 else jnp.int32
    exponent = (n.astype(bits) + (info.maxexp - 1)) << info.nmant
    return jax.lax.bitcast_convert_type(exponent, n.dtype)


def log_with_error(x: jax.Array, x_low: jax.Array) -> tuple[jax.Array, jax.Array]:
    """:math:`\\log(x + x_l) = h + l` for a positive two-term sum, to a few :math:`2^{-30}` of :math:`|h|`.

    XLA's ``log`` is off by up to 1.1 ulp; one Newton step on :math:`e^{h} = x` with the
    compensated :func:`exp_with_error` gives :math:`l = (x + x_l) e^{-h} - 1` (exact to first
    order: :math:`x e^{-h}` is within an ulp of 1, so its difference from 1 is exact).
    """
    high = jnp.log(x)
    inverse, inverse_low = exp_with_error(-high)
    product, product_error = two_product(x, inverse)
    one = _backend.computed_one(x)
    return high, (product - one) + (product_error + (x * inverse_low + x_low * inverse))


# ln 2 = high + low, each high with enough trailing zeros that k high is exact (Cody and Waite).
LN2_HIGH, LN2_LOW = 0.693145751953125, 1.4286068203094173e-06  # 64 high is exact in any float
_LN2_HIGH_32 = 0.693145751953125
_LN2_LOW_32 = 1.4286068203094173e-06
_LN2_HIGH_64 = 6.93147180369123816490e-01
_LN2_LOW_64 = 1.90821492927058770002e-10
