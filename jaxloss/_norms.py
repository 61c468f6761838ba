"""The Euclidean norm of a seed over the classes, without underflow, overflow or a stored seed.

.. math::
  \\lVert g \\rVert_2 = 2^{-k} \\sqrt{\\textstyle\\sum_j (2^k |g_j|)^2},
  \\qquad 2^{-k} \\le \\max_j |g_j| < 2^{1-k}

A confident row's gradient is tiny (:math:`1 - p_l = R/S` may be :math:`10^{-30}`), and its
squares would underflow in float32; a large class weight squared may overflow. Scaled by the
power of two :math:`2^k` of the largest magnitude, the largest square lies in [1/4, 1) and a
square that still underflows is below :math:`2^{-126}` of it, far under a rounding of the sum.
The scaling is exact, so the norm rounds only in the squares, their sum, the square root and
the magnitudes themselves: the seeds' elements, each within their own ulps.

Two passes over the classes after the cost's own statistics: the largest magnitude, then the
scaled sum of squares. On an accelerator each pass recomputes the seed from the rule's
residuals (the inputs as stored and per-row statistics) behind a barrier
(``_backend.accelerator_barrier``), and neither writes it: compiled for an H200, no norm holds a
logits-sized temporary (``tests/test_grad_norms.py``). XLA-CPU writes the seed out before its
reductions whatever the barriers (its YNNPACK reduction takes only arithmetic producers, and
the seeds select: ``_backend``, rule 1), so there the two passes share that one array: the
memory of ``jax.vmap(jax.grad(...))`` and a norm, and one array more than the cost's
``value_and_grad`` (256x4096 float32, integer labels: 1.0 array, 2.0 with the barriers; at
1024x32768, 69 ms against 133 ms with the barriers, and 60 ms for the cost's value_and_grad).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxloss import _backend
from jaxloss._checks import Axes


def _power_of_two(exponent: jax.Array, dtype: Any) -> jax.Array:
    """:math:`2^n` for integers ``n`` in the normal range of ``dtype``, exactly (its bits)."""
    info = jnp.finfo(dtype)
    bits = jnp.dtype(dtype).itemsize * 8
    mantissa = info.nmant
    bias = info.maxexp - 1
    uint = jnp.uint32 if bits == 32 else jnp.uint64
    biased = (jnp.clip(exponent, info.minexp, info.maxexp - 1) + bias).astype(uint)  # in [1, 2 bias]
    return jax.lax.bitcast_convert_type(biased << mantissa, dtype)


def scale_exponent(largest: jax.Array) -> jax.Array:
    """:math:`k` with :math:`2^k \\cdot` ``largest`` in [1/2, 1), for finite positive ``largest``; 0 otherwise."""
    exponent = jnp.frexp(largest)[1]
    return jnp.where(jnp.isfinite(largest) & (largest > 0), -exponent, 0)


def scaled(values: jax.Array, k: jax.Array) -> jax.Array:
    """``values`` times :math:`2^k`, exactly, in two factors so that each is a normal number."""
    half = k // 2
    return values * _power_of_two(half, values.dtype) * _power_of_two(k - half, values.dtype)


def norm(magnitudes: Callable[[Any], jax.Array], residuals: Any, axes: Axes) -> jax.Array:
    """:math:`\\lVert g \\rVert_2` over ``axes`` of :math:`|g|` = ``magnitudes(residuals)``, axes dropped.

    ``magnitudes`` recomputes :math:`|g|` from ``residuals`` (the seed of a rule); it runs twice,
    behind barriers on an accelerator, so that each pass recomputes it rather than reading a
    stored copy. A NaN magnitude gives NaN, an infinite one (and no NaN) gives ``inf``, a row of
    zeros 0.
    """
    if not axes:
        return magnitudes(residuals)
    largest = jnp.max(magnitudes(_backend.accelerator_barrier(residuals)), axis=axes, keepdims=True)
    residuals, largest = _backend.accelerator_barrier((residuals, largest))
    k = scale_exponent(largest)
    total = _scaled_sum_of_squares(magnitudes(residuals), k, axes)
    # At an infinite magnitude the scaled sum is already inf; a NaN stays NaN.
    return jnp.squeeze(scaled(jnp.sqrt(total), -k), axes)


def _scaled_sum_of_squares(magnitudes: jax.Array, k: jax.Array, axes: Axes) -> jax.Array:
    return jnp.sum(jnp.square(scaled(magnitudes, k)), axis=axes, keepdims=True)


def row_norm(magnitudes: jax.Array, axis: int) -> jax.Array:
    """:math:`\\lVert g \\rVert_2` along ``axis`` of magnitudes the caller holds (a block of rows), axis dropped."""
    largest = jnp.max(magnitudes, axis=axis, keepdims=True)
    k = scale_exponent(largest)
    total = _scaled_sum_of_squares(magnitudes, k, (axis,))
    return jnp.squeeze(scaled(jnp.sqrt(total), -k), axis)


class Squares(NamedTuple):
    """A sum of squares over blocks of classes, per row: the largest magnitude so far, and the
    sum of squares scaled by its power of two (:func:`scale_exponent`), shape (rows,)."""

    largest: jax.Array
    total: jax.Array


def no_squares(rows: int, dtype: Any) -> Squares:
    return Squares(jnp.zeros((rows,), dtype), jnp.zeros((rows,), dtype))


def add_block(carry: Squares, magnitudes: jax.Array) -> Squares:
    """``carry`` with the magnitudes of one more block of classes, shape (rows, width).

    When the largest magnitude grows, the sum so far is rescaled to its new power of two:
    exactly, by a power of two (an online norm, as an online log-sum-exp rescales its sum).
    """
    largest = jnp.maximum(carry.largest, jnp.max(magnitudes, axis=1))
    k_before, k = scale_exponent(carry.largest), scale_exponent(largest)
    block = _scaled_sum_of_squares(magnitudes, k[:, None], (1,))[:, 0]
    return Squares(largest, scaled(carry.total, 2 * (k - k_before)) + block)


def finished(carry: Squares) -> jax.Array:
    """The norm of each row from its :class:`Squares`."""
    return scaled(jnp.sqrt(carry.total), -scale_exponent(carry.largest))


def joined(carry: Squares, axis_name: Any) -> Squares:
    """The :class:`Squares` of every device's classes along the mesh axis: one ``pmax`` and one ``psum`` per row.

    Each device's sum is rescaled to the power of two of the largest magnitude over the axis
    (exactly) before the sum.
    """
    largest = jax.lax.pmax(carry.largest, axis_name)
    rescaled = scaled(carry.total, 2 * (scale_exponent(largest) - scale_exponent(carry.largest)))
    return Squares(largest, jax.lax.psum(rescaled, axis_name))


# --- examples of several tokens: the Gram matrix of their seeds ----------------------------------


class Grams(NamedTuple):
    """Per sequence of T tokens, the Gram matrix of their seeds over blocks of classes.

    :math:`G_{tu} = 2^{k_t + k_u} \\sum_j g_{tj} g_{uj}`, each token scaled by the power of two
    :math:`2^{k_t}` of its largest magnitude so far (:func:`scale_exponent`), as :class:`Squares`
    scales a row: its diagonal is their ``total``.

    Attributes:
      largest: :math:`\\max_j |g_{tj}|` so far, shape (sequences, T).
      gram: the scaled Gram matrices, shape (sequences, T, T).
    """

    largest: jax.Array
    gram: jax.Array


def no_grams(sequences: int, length: int, dtype: Any) -> Grams:
    return Grams(jnp.zeros((sequences, length), dtype), jnp.zeros((sequences, length, length), dtype))


def _pair_scaled(gram: jax.Array, k: jax.Array) -> jax.Array:
    """``gram`` times :math:`2^{k_t + k_u}` at (t, u), exactly; ``k`` has shape (sequences, T)."""
    return scaled(gram, k[:, :, None] + k[:, None, :])


def add_gram_block(carry: Grams, seeds: jax.Array) -> Grams:
    """``carry`` with one more block of classes of the seeds, shape (sequences, T, width), signed.

    Where a token's largest magnitude grows, its row and column of the sum so far are rescaled
    to the new power of two (exactly), then the block's scaled seeds add their T x T product.
    """
    largest = jnp.maximum(carry.largest, jnp.max(jnp.abs(seeds), axis=2))
    k = scale_exponent(largest)
    before = _pair_scaled(carry.gram, k - scale_exponent(carry.largest))
    block = scaled(seeds, k[:, :, None])
    product = jnp.einsum("stj,suj->stu", block, block, precision=jax.lax.Precision.HIGHEST)
    return Grams(largest, before + product)


def joined_grams(carry: Grams, axis_name: Any) -> Grams:
    """The :class:`Grams` of every device's classes along the mesh axis: a ``pmax`` of T numbers and
    a ``psum`` of T x T numbers per sequence, each device's sum rescaled first (exactly)."""
    largest = jax.lax.pmax(carry.largest, axis_name)
    rescaled = _pair_scaled(carry.gram, scale_exponent(largest) - scale_exponent(carry.largest))
    return Grams(largest, jax.lax.psum(rescaled, axis_name))


def segment_norms(grams: Grams, hidden: jax.Array, has_bias: bool, same: jax.Array) -> jax.Array:
    """Each example's gradient norm for (weight, bias), where an example is a segment of tokens of one sequence.

    .. math::
      \\Bigl\\lVert \\sum_{t \\in s} h_t g_t^\\top \\Bigr\\rVert_F^2
      + \\Bigl\\lVert \\sum_{t \\in s} g_t \\Bigr\\rVert^2
      = \\sum_{t, u \\in s} (h_t \\cdot h_u + [b]) (g_t \\cdot g_u)

    ``hidden`` (sequences, T, D); ``same`` (sequences, T, T): True where t and u are tokens of the
    same example (both counted). Each token's hidden state is scaled by the power of two of its
    largest magnitude (and 1 with a bias) as its seed is, and each example's sum by the power of
    two of its largest token, so that no product underflows or overflows before the sum. The
    sum may cancel (the tokens' gradients may point apart): its rounding is relative to
    :math:`\\sum_{t,u} |h_t \\cdot h_u + [b]| |g_t \\cdot g_u|`, not to the norm. Returns shape
    (sequences, T): every token of an example holds its norm.
    """
    compute = grams.gram.dtype
    h = hidden.astype(compute)
    top = jnp.max(jnp.abs(h), axis=2)
    if has_bias:
        top = jnp.maximum(top, 1.0)
    m = scale_exponent(top)
    h = scaled(h, m[:, :, None])
    inner = jnp.einsum("std,sud->stu", h, h, precision=jax.lax.Precision.HIGHEST)
    if has_bias:
        inner = inner + _pair_scaled(jnp.ones_like(inner), m)
    # Each token's terms carry 2^(k_t + m_t); each example's sum is taken at 2^(2 e) for its
    # smallest such exponent e (its largest token), so every term is scaled by at most 1.
    exponent = scale_exponent(grams.largest) + m
    live = (grams.largest > 0) & (top > 0)
    unset = jnp.iinfo(exponent.dtype).max
    own = jnp.where(live, exponent, unset)
    example = jnp.min(jnp.where(same, own[:, None, :], unset), axis=2)
    example = jnp.where(example == unset, 0, example)
    terms = jnp.where(same, inner * grams.gram, 0.0)
    terms = scaled(terms, 2 * example[:, :, None] - exponent[:, :, None] - exponent[:, None, :])
    rows = jnp.sum(terms, axis=2)
    total = jnp.sum(jnp.where(same, rows[:, None, :], 0.0), axis=2)
    return scaled(jnp.sqrt(jnp.maximum(total, 0.0)), -example)
