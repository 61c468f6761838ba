"""A cost's three ways of being differentiated, built from its stable formula, its seed and the article's formula.

A :class:`Rule` holds, for one cost ``loss(x, y, aux, axes)`` (per example: reduced over
``axes``, or element-wise when ``axes`` is empty):

* ``forward(x, y, aux, axes) -> (loss, residuals)``: the stable formula;
* ``seed(residuals, axes) -> (dloss/dx, dloss/dy or None)``: the closed-form per-example seeds,
  each of the full shape of ``x`` (written in :mod:`jaxloss.seeds`);
* ``reference(x, y, aux, axes) -> loss``: the article's literal formula, for autodiff.

``aux`` holds what is not differentiated: a mask, the clamp limits, the training options.

``x`` and ``y`` come as stored (:func:`stored_pair`): bfloat16 and float16 inputs stay in their
dtype, and ``forward`` and ``seed`` compute on :func:`widen`'s float32 copies (the probability
costs widen theirs ahead of the rule, and :func:`widen` leaves them). The residuals
begin with ``x`` and ``y`` as stored, and hold otherwise only per-row statistics and ``aux``:
the seed widens the inputs again, and its gradients are cast back to the inputs' dtypes.
A barrier on the residuals (``_backend``, rules 4 and 8) then holds no float32 copy that the
compiler would have to write out, and the compiler may fuse each widening into the pass that
reads it: with the cast ahead of the rule, XLA-TPU (v5e, jax 0.10.2) wrote a float32 copy of
the bfloat16 logits for the integer-label cost at 8192x32768, two logits-sized arrays.

Each rule is declared beside its formula (:func:`rule`, :meth:`Rule.defseed`). Calling a rule
runs the way of the namespace the public cost was called through:
:mod:`jaxloss` a ``custom_vjp`` rule, :mod:`jaxloss.forward` a ``custom_jvp`` rule,
:mod:`jaxloss.reference` the literal formula, and :mod:`jaxloss.grad_norms` the norm of the
seed over ``axes`` (:meth:`Rule.grad_norm`) in place of the loss. Each public cost is one
``def``, in its family's module; :func:`in_namespace` makes its twin in another namespace, which selects the way for the
duration of the call (when JAX traces it), so the twins share every line of validation.

``custom_vjp``: the cotangent ``g`` of the per-example loss multiplies the seed,
:math:`\\bar x = g \\cdot \\partial\\ell/\\partial x`. ``custom_jvp``:
:math:`\\dot\\ell = \\sum_{axes} \\partial\\ell/\\partial x \\cdot \\dot x + \\partial\\ell/\\partial y \\cdot \\dot y`,
skipping symbolic-zero tangents.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import re
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec

import jax
import jax.numpy as jnp

from jaxloss import _backend, _checks, _norms
from jaxloss._checks import Axes

Forward = Callable[[jax.Array, jax.Array, Any, Axes], tuple[jax.Array, Any]]
Seed = Callable[[Any, Axes], tuple[jax.Array, jax.Array | None]]
Reference = Callable[[jax.Array, jax.Array, Any, Axes], jax.Array]

VJP, JVP, REFERENCE, NORM = "jaxloss", "jaxloss.forward", "jaxloss.reference", "jaxloss.grad_norms"
_WAY = contextvars.ContextVar("jaxloss_way", default=VJP)


def current_way() -> str:
    """The namespace whose way the rules run in now."""
    return _WAY.get()


@contextlib.contextmanager
def way(namespace: str) -> Iterator[None]:
    """The rules run in the way of ``namespace`` inside the block (while JAX traces the call)."""
    token = _WAY.set(namespace)
    try:
        yield
    finally:
        _WAY.reset(token)


class Rule:
    """One cost, differentiable in the three ways of the three namespaces.

    Declared beside its formula, as ``jax.custom_jvp`` is, with :func:`rule` on the forward
    formula and :meth:`defseed` on the seed right below it::

        @rule(reference=_article.binary_cross_entropy)
        def _binary(probs, labels, limits, axes):  # the stable formula: (loss, residuals)
            ...

        @_binary.defseed
        def _binary_seed(residuals, axes):  # the closed-form seeds
            ...

    The public cost calls ``_binary(...)``: go-to-definition there lands on the formula, with
    its seed and the article's formula named beside it.
    """

    custom_vjp: Callable[..., jax.Array]
    custom_jvp: Callable[..., jax.Array]
    seed: Seed

    def __init__(
        self,
        forward: Forward,
        *,
        reference: Reference,
        guard: Callable[[Any], Any] | None = _backend.residual_barrier,
    ):
        functools.update_wrapper(self, forward)
        self.forward, self.reference = forward, reference
        # What the residuals pass through before the seed reads them: a barrier of ``_backend``
        # makes the seed recompute from them (rules 4 and 8); None shares freely.
        self.guard = _unguarded if guard is None else guard

    def defseed(self, seed: Seed) -> Seed:
        """Declares the closed-form seeds of the formula, and with them its two custom rules."""
        self.seed = seed
        self.custom_vjp = _custom_vjp(self.forward, seed, self.guard)
        self.custom_jvp = _custom_jvp(self.forward, seed, self.guard)
        return seed

    def __call__(self, x: jax.Array, y: jax.Array, aux: Any, axes: Axes) -> jax.Array:
        """The cost of ``x`` and ``y`` as stored (:func:`stored_pair`), in the way of the namespace."""
        way = _WAY.get()
        if way == REFERENCE:
            return self.reference(widen(x), widen(y), aux, axes)
        if way == NORM:
            return self.grad_norm(x, y, aux, axes)
        rule = self.custom_jvp if way == JVP else self.custom_vjp
        return rule(x, y, aux, axes)

    def grad_norm(
        self, x: jax.Array, y: jax.Array, aux: Any, axes: Axes, over: Axes | None = None, where: Any = None
    ) -> jax.Array:
        """:math:`\\lVert \\partial\\ell/\\partial x \\rVert_2` over ``over`` (by default ``axes``): the seed's norm.

        The forward pass's statistics, then the seed twice (``_norms.norm``): on an accelerator
        behind barriers, storing nothing of the logits' size; XLA-CPU writes the seed once. With
        no axes, :math:`|\\partial\\ell/\\partial x|` element-wise. ``where`` (the shape of
        ``x``) leaves elements out of an element-wise cost summed over ``over``
        (``_sigmoid.summed_over``).
        """
        over = axes if over is None else over
        residuals = self.forward(x, y, aux, axes)[1]

        def magnitudes(guarded: Any) -> jax.Array:
            grad = jnp.abs(self.seed(guarded, axes)[0])
            return grad if where is None else jnp.where(where, grad, 0.0)

        return _norms.norm(magnitudes, residuals, over)


def rule(
    *, reference: Reference, guard: Callable[[Any], Any] | None = _backend.residual_barrier
) -> Callable[[Forward], Rule]:
    """Makes the decorated forward formula a :class:`Rule` with the article's ``reference`` formula.

    ``guard``: what the residuals pass through before the seed reads them (default: the residual
    barrier, ``_backend`` rule 4); None shares them freely.
    """

    def declare(forward: Forward) -> Rule:
        return Rule(forward, reference=reference, guard=guard)

    return declare


Params = ParamSpec("Params")


def in_namespace(cost: Callable[Params, jax.Array], namespace: str) -> Callable[Params, jax.Array]:
    """The twin of the public ``cost`` in ``namespace``: same signature (for ``inspect`` and the
    type checker alike), checks and docstring."""

    @functools.wraps(cost)
    def twin(*args: Params.args, **kwargs: Params.kwargs) -> jax.Array:
        with way(namespace):
            return cost(*args, **kwargs)

    # The twin keeps the cost's module, so its examples run once, as the cost's doctest. The
    # cost's paragraph on its modes of differentiation is the custom_vjp's: the twin states its own.
    doc = _NEEDS_THE_TWIN.sub("\n", cost.__doc__ or "")
    twin.__doc__ = f"{doc}\n    {_NOTES[namespace]}\n"
    return twin


_NEEDS_THE_TWIN = re.compile(r"\n    Forward mode needs the twin:.*?\n\n", re.DOTALL)


_NOTES = {
    JVP: "In :mod:`jaxloss.forward`: the same seed as a ``custom_jvp`` rule, for forward mode and reverse mode"
    " (``jax.jvp``, ``jax.jacfwd``, ``jax.hessian``, ``jax.grad``).",
    REFERENCE: "In :mod:`jaxloss.reference`: the article's literal formula, differentiated by autodiff in either mode.",
}


def widen(x: jax.Array) -> jax.Array:
    """``x`` in the dtype the costs compute in: float16 and bfloat16 in float32, others as they are."""
    return x.astype(_wide(x.dtype))


def _wide(dtype: Any) -> jnp.dtype:
    if jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32:
        return jnp.dtype(jnp.float32)
    return jnp.dtype(dtype)


def stored_pair(
    inputs: jax.typing.ArrayLike, labels: jax.typing.ArrayLike, input_name: str, labels_name: str = "labels"
) -> tuple[jax.Array, jax.Array, jnp.dtype]:
    """``_checks.floating_pair``'s validation and broadcast, with the inputs kept as stored where they can be.

    Returns:
      The two arrays and the compute dtype (``_checks.compute_dtype``): each array as it is if
      :func:`widen` takes it to the compute dtype (a bfloat16 input beside float32 labels), else
      cast to it (integer labels, float32 labels beside float64 logits). The rule's gradient of
      an array comes back in its dtype here, as the cast's transpose returned it before.
    """
    x = _checks.as_array(inputs, input_name)
    _checks.require_floating(x, input_name)
    y = _checks.as_array(labels, labels_name)
    _checks.require_real(y, labels_name)
    shape = _checks.broadcast_shape(x, y, (input_name, labels_name))
    dtype = _checks.compute_dtype(x, y)
    return stored(x, dtype, shape), stored(y, dtype, shape), dtype


def stored(array: jax.Array, dtype: Any, shape: tuple[int, ...]) -> jax.Array:
    """``array`` broadcast to ``shape``: as stored if :func:`widen` gives ``dtype`` from it, else cast to ``dtype``."""
    keep = jnp.issubdtype(array.dtype, jnp.floating) and _wide(array.dtype) == jnp.dtype(dtype)
    return jnp.broadcast_to(array if keep else array.astype(dtype), shape)


def _unguarded(residuals: Any) -> Any:
    return residuals


def _custom_vjp(forward: Forward, seed: Seed, guard: Callable[[Any], Any]) -> Callable[..., jax.Array]:
    def primal(x: jax.Array, y: jax.Array, aux: Any, axes: Axes) -> jax.Array:
        return forward(x, y, aux, axes)[0]

    cost = jax.custom_vjp(primal, nondiff_argnums=(3,))

    def bwd(axes: Axes, residuals: Any, g: jax.Array) -> tuple[Any, ...]:
        grad_x, grad_y = seed(guard(residuals), axes)
        g = jnp.expand_dims(g, axes)
        x, y = residuals[:2]  # as stored: the gradients go back in their dtypes
        return (g * grad_x).astype(x.dtype), None if grad_y is None else (g * grad_y).astype(y.dtype), None

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
            tangent = tangent + jnp.sum(grad * widen(dot), axis=axes)
        return loss, tangent

    cost.defjvp(jvp, symbolic_zeros=True)
    return cost
