"""The clamp policy of the probability-space costs (``_probability``) and their seeds.

``log a`` is evaluated at ``max(a, tiny)`` and ``log(1 - a)`` at ``min(a, 1 - eps/2)``, where
``tiny`` is the smallest normal number of the input's dtype and ``1 - eps/2`` the largest number
below 1. Only exact 0, exact 1 and subnormals move, so every loss and seed is finite and the
seed keeps its sign (clipping to [eps, 1 - eps], as Keras does, zeroes the gradient there); a
term whose label weight is 0 still costs exactly 0. Values outside [0, 1] are not probabilities
and give NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def probability_limits(input_dtype: jnp.dtype, compute_dtype: jnp.dtype) -> jax.Array:
    """``[tiny, 1 - eps/2]`` of the input's dtype, in the compute dtype.

    float16 is computed in float32 but clamped to its own limits, so that the seed at an exact
    0 or 1 is finite when it is cast back to float16.
    """
    info = jnp.finfo(input_dtype)
    return jnp.array([info.smallest_normal, 1.0 - info.epsneg], dtype=compute_dtype)


def clamp_probs(probs: jax.Array, *, upper: bool, limits: jax.Array | None = None) -> jax.Array:
    """``probs`` raised to ``tiny`` and, with ``upper=True``, lowered to ``1 - eps/2``; NaN outside [0, 1]."""
    if limits is None:
        limits = probability_limits(probs.dtype, probs.dtype)
    clamped = jnp.clip(probs, limits[0], limits[1] if upper else 1.0)
    return outside_as_nan(probs, clamped)


def outside_as_nan(probs: jax.Array, values: jax.Array | None = None) -> jax.Array:
    """``values`` (``probs`` itself by default), NaN where ``probs`` is outside [0, 1]: such
    values are not probabilities. Every namespace follows this, the reference included."""
    return jnp.where((probs < 0) | (probs > 1), jnp.nan, probs if values is None else values)
