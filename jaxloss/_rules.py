"""A cost's three ways of being differentiated, built from its stable formula, its seed and the article's formula.

A :class:`Rule` holds, for one cost ``loss(x, y, aux, axes)`` (per example: reduced over
``axes``, or element-wise when ``axes`` is empty):

* ``forward(x, y, aux, axes) -> (loss, residuals)``: the stable formula;
* ``seed(residuals, axes) -> (dloss/dx, dloss/dy or None)``: the closed-form per-example seeds,
  each of the full shape of ``x`` (written in :mod:`jaxloss.seeds`);
* ``reference(x, y, aux, axes) -> loss``: the article's literal formula, for autodiff.

``aux`` holds what is not differentiated: a mask, the clamp limits, the training options.

Calling a rule runs the way of the namespace the public cost was called through:
:mod:`jaxloss` a ``custom_vjp`` rule, :mod:`jaxloss.forward` a ``custom_jvp`` rule and
:mod:`jaxloss.reference` the literal formula. Each public cost is one ``def``, in its family's
module; :func:`in_namespace` makes its twin in another namespace, which selects the way for the
duration of the call (when JAX traces it), so the twins share every line of validation.

``custom_vjp``: the cotangent ``g`` of the per-example loss multiplies the seed,
:math:`\\bar x = g \\cdot \\partial\\ell/\\partial x`. ``custom_jvp``:
:math:`\\dot\\ell = \\sum_{axes} \\partial\\ell/\\partial x \\cdot \\dot x + \\partial\\ell/\\partial y \\cdot \\dot y`,
skipping symbolic-zero tangents.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _backend

Axes = tuple[int, ...]
Forward = Callable[[jax.Array, jax.Array, Any, Axes], tuple[jax.Array, Any]]
Seed = Callable[[Any, Axes], tuple[jax.Array, jax.Array | None]]
Reference = Callable[[jax.Array, jax.Array, Any, Axes], jax.Array]

VJP, JVP, REFERENCE = "jaxloss", "jaxloss.forward", "jaxloss.reference"
_WAY = contextvars.ContextVar("jaxloss_way", default=VJP)


class Rule:
    """One cost, differentiable in the three ways of the three namespaces."""

    def __init__(self, forward: Forward, seed: Seed, reference: Reference, *, barrier: bool = True):
        self.forward, self.seed, self.reference = forward, seed, reference
        # Whether the seed recomputes from the residuals behind ``_backend.residual_barrier``.
        guard = _backend.residual_barrier if barrier else _unguarded
        self.custom_vjp = _custom_vjp(forward, seed, guard)
        self.custom_jvp = _custom_jvp(forward, seed, guard)

    def __call__(self, x: jax.Array, y: jax.Array, aux: Any, axes: Axes) -> jax.Array:
        way = _WAY.get()
        if way == REFERENCE:
            return self.reference(x, y, aux, axes)
        rule = self.custom_jvp if way == JVP else self.custom_vjp
        return rule(x, y, aux, axes)


def in_namespace(cost: Callable[..., jax.Array], namespace: str) -> Callable[..., jax.Array]:
    """The twin of the public ``cost`` in ``namespace``: same signature, checks and docstring."""

    @functools.wraps(cost)
    def twin(*args: Any, **kwargs: Any) -> jax.Array:
        token = _WAY.set(namespace)
        try:
            return cost(*args, **kwargs)
        finally:
            _WAY.reset(token)

    # The twin keeps the cost's module, so its examples run once, as the cost's doctest.
    twin.__doc__ = f"{cost.__doc__}\n    {_NOTES[namespace]}\n"
    return twin


_NOTES = {
    JVP: "In :mod:`jaxloss.forward`: the same seed as a ``custom_jvp`` rule, for forward mode.",
    REFERENCE: "In :mod:`jaxloss.reference`: the article's literal formula, differentiated by autodiff.",
}


def _unguarded(residuals: Any) -> Any:
    return residuals


def _custom_vjp(forward: Forward, seed: Seed, guard: Callable[[Any], Any]) -> Callable[..., jax.Array]:
    def primal(x: jax.Array, y: jax.Array, aux: Any, axes: Axes) -> jax.Array:
        return forward(x, y, aux, axes)[0]

    cost = jax.custom_vjp(primal, nondiff_argnums=(3,))

    def bwd(axes: Axes, residuals: Any, g: jax.Array) -> tuple[Any, ...]:
        grad_x, grad_y = seed(guard(residuals), axes)
        g = jnp.expand_dims(g, axes)
        return g * grad_x, None if grad_y is None else g * grad_y, None

    # fwd is the plain formula (never the custom_vjp function itself), so forward-over-reverse
    # (jax.hessian) differentiates the plain formula and the seed.
    cost.defvjp(forward, bwd)
    return cost


def _custom_jvp(forward: Forward, seed: Seed, guard: Callable[[Any], Any]) -> Callable[..., jax.Array]:
    def primal(x: jax.Array, y: jax.Array, aux: Any, axes: Axes) -> jax.Array:
        return forward(x, y, aux, axes)[0]

    cost = jax.custom_jvp(primal, nondiff_argnums=(3,))

    def jvp(axes: Axes, primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> tuple[jax.Array, jax.Array]:
        x, y, aux = primals
        loss, residuals = forward(x, y, aux, axes)
        grads = seed(guard(residuals), axes)
        tangent = jnp.zeros_like(loss)
        for grad, dot in zip(grads, tangents[:2], strict=True):
            if grad is None or isinstance(dot, jax.custom_derivatives.SymbolicZero):
                continue
            tangent = tangent + jnp.sum(grad * dot, axis=axes)
        return loss, tangent

    cost.defjvp(jvp, symbolic_zeros=True)
    return cost
