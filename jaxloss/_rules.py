"""Builds a ``custom_vjp`` or a ``custom_jvp`` cost from a forward formula and its seed.

A :class:`Core` is a cost ``loss(x, y, where, axes)`` reduced over ``axes`` (or element-wise when
``axes`` is empty), given as

* ``forward(x, y, where, axes) -> (loss, residuals)``: the stable formula, and
* ``seed(residuals, axes) -> (dloss/dx, dloss/dy or None)``: the closed-form per-example seeds,
  each of the full shape of ``x``.

Both rules use the same two functions, so each derivative is written once, in ``seeds``.

``custom_vjp``: the cotangent ``g`` of the per-example loss multiplies the seed,
:math:`\\bar x = g \\cdot \\partial\\ell/\\partial x`. ``fwd`` calls the plain ``forward`` (never the
``custom_vjp`` function itself), so forward-over-reverse (``jax.hessian``) differentiates the
plain formulas and the seed.

``custom_jvp``: :math:`\\dot\\ell = \\sum_{axes} \\partial\\ell/\\partial x \\cdot \\dot x +
\\partial\\ell/\\partial y \\cdot \\dot y`, skipping symbolic-zero tangents.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Axes = tuple[int, ...]
Cost = Callable[[jax.Array, jax.Array, Any, Axes], jax.Array]  # the third: where, limits or options


class Core(NamedTuple):
    """A cost given by its stable forward formula and its closed-form seed."""

    forward: Callable[[jax.Array, jax.Array, Any, Axes], tuple[jax.Array, Any]]
    seed: Callable[[Any, Axes], tuple[jax.Array, jax.Array | None]]


def _primal(core: Core) -> Cost:
    def cost(x: jax.Array, y: jax.Array, where: jax.Array | None, axes: Axes) -> jax.Array:
        return core.forward(x, y, where, axes)[0]

    return cost


def custom_vjp_cost(core: Core) -> Cost:
    """The cost with a reverse-mode rule built from ``core.seed``."""
    cost = jax.custom_vjp(_primal(core), nondiff_argnums=(3,))

    def fwd(x: jax.Array, y: jax.Array, where: jax.Array | None, axes: Axes) -> tuple[jax.Array, Any]:
        return core.forward(x, y, where, axes)

    def bwd(axes: Axes, residuals: Any, g: jax.Array) -> tuple[Any, ...]:
        # The barrier keeps XLA from sharing the forward pass's exponentials with the backward
        # pass: sharing writes them out as an array the size of the logits, and recomputing them
        # inside the backward pass's single fused loop is cheaper than that.
        residuals = jax.lax.optimization_barrier(residuals)
        grad_x, grad_y = core.seed(residuals, axes)
        g = jnp.expand_dims(g, axes)
        return g * grad_x, None if grad_y is None else g * grad_y, None

    cost.defvjp(fwd, bwd)
    return cost


def custom_jvp_cost(core: Core) -> Cost:
    """The cost with a forward-mode rule built from ``core.seed``."""
    cost = jax.custom_jvp(_primal(core), nondiff_argnums=(3,))

    def jvp(axes: Axes, primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> tuple[jax.Array, jax.Array]:
        x, y, where = primals
        loss, residuals = core.forward(x, y, where, axes)
        # As in the reverse rule: the seed recomputes its exponentials rather than share them.
        grads = core.seed(jax.lax.optimization_barrier(residuals), axes)
        tangent = jnp.zeros_like(loss)
        for grad, dot in zip(grads, tangents[:2], strict=True):
            if grad is None or isinstance(dot, jax.custom_derivatives.SymbolicZero):
                continue
            tangent = tangent + jnp.sum(grad * dot, axis=axes)
        return loss, tangent

    cost.defjvp(jvp, symbolic_zeros=True)
    return cost
