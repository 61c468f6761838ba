"""Named primitives that exist to steer XLA's CPU backend; each computes a plain mathematical value.

The formulas of the costs call these instead of the obvious expression wherever the obvious
expression makes XLA's CPU backend write out an array the size of the logits. The rules they
serve, measured on XLA-CPU (jaxlib 0.8-0.10, 2-core x86-64):

1. Its fused reduction kernel (YNNPACK) takes only arithmetic producers. A ``compare``, a
   ``select``, a ``clamp``, or a constant or row broadcast that another fusion also uses, makes
   it materialise the reduction's operand first: at 2048x32768 float32 that is 256 MB of
   temporaries, and the sum of exponentials goes from 12 ms to about 40 ms.
2. Its algebraic simplifier folds ``(1 + x) - 1`` to ``x`` when the 1 is a literal, which undoes a
   compensated sum; it cannot fold a 1 that is computed from the data.
3. It rewrites a division by a broadcast row value into a multiplication by the reciprocal,
   which rounds twice.
4. Without a barrier on the residuals, it shares the forward pass's exponentials with the
   backward pass by writing them out; for the sigmoid costs recomputing them inside the backward
   loop is cheaper (4096x4096 float32: 128 ms and no temporary with the barrier, 162 ms and
   128 MB without). For integer labels it is the other way (jaxlib 0.10.2): without the barrier
   the row statistics fuse with the seed and no logits-sized array is written (2048x8192
   float32: 57 ms without, 70 ms with; 256x10: 0.037 ms and 0.059 ms), so that rule has none.
5. It folds a transpose into the matrix product that reads it, and a product that contracts
   the row axis of both operands (:math:`h^\\top g`, the output weight's gradient) runs at half
   speed: at N=2048, D=512, V=32768 float32, 1224 ms for ``dot_general`` over axis 0 of both,
   575 ms for ``dot`` of a written-out :math:`h^\\top`. In the reduced ``linear_cross_entropy``
   (value_and_grad, against optax's unfused cost, two runs): 1.45x and 1.55x with
   :func:`transposed`, 0.93x and 0.94x without.
6. It has no bfloat16 matrix unit: a product of bfloat16 operands is converted inside the
   product, and runs slower than on float32 copies. At N=2048, D=512, V=32768: ``h @ W`` 1022 ms
   with bfloat16 operands, 750 ms on float32 copies; the reduced ``linear_cross_entropy`` step
   0.85x optax's bfloat16 step with bfloat16 operands, 1.14x with float32 ones.
7. Its code generator fuses a multiplication and an addition that reads it into one fused
   multiply-add, also where the product has other readers (``vfmadd`` in the object code of the
   jitted focal loss; no ``fmuladd`` in the LLVM IR that XLA emits). A compensated product
   :math:`p = a \\otimes b`, :math:`e = ab - p` breaks when a reader of :math:`p` sees the exact
   :math:`ab` instead, which then carries :math:`e` already. Measured on the focal loss with soft
   labels (float32, alpha 0.25, 3,000 points): 3.64 ulp jitted and 0.98 op by op; 0.56 jitted
   with :func:`unfused_product` in ``two_product``, and 3.64 again with it taken out of the one
   product :math:`y e^{-|z|}` that a two-term sum reads, alone among the eight.

Each primitive below states which rule it serves. The figures that justify them are in the
README's bench tables; ``tests/test_transforms.py`` checks the compiled temporaries of every cost.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def computed_one(x: jax.Array) -> jax.Array:
    """1 of ``x``'s dtype (0 where ``x`` is NaN), computed from ``x`` so that XLA cannot fold it (rule 2)."""
    return (x == x).astype(x.dtype)


def unfused_product(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a * b``, rounded once, plus a computed zero, so that no later addition fuses with the multiplication (rule 7).

    The multiply-add that the code generator may form from it, :math:`\\mathrm{fma}(a, b, 0)`,
    rounds to the same product, and its readers then see a value rather than a multiplication.
    """
    return a * b + 0.0 * computed_one(a)


def twice_below_zero(x: jax.Array) -> jax.Array:
    """The indicator ``2 [x < 0]`` (NaN stays NaN) with arithmetic only: ``sign(-x) + |sign(-x)|`` (rule 1)."""
    sign = jnp.sign(-x)
    return sign + jnp.abs(sign)


def not_equal_indicator(x: jax.Array, y: jax.Array) -> jax.Array:
    """The indicator ``[x != y]`` for integer-valued floats, as ``min((x - y)^2, 1)``: arithmetic only (rule 1).

    Exact wherever ``x - y`` is: class ids below ``2**24`` in float32. Measured at 2048x32768
    float32, a sum of ``exp(z - M)`` takes 43 ms alone, 58 ms times this indicator, 72 ms times
    ``min(|x - y|, 1)``, 106 ms times ``|sign(x - y)|`` and 186 ms with ``where(x == y, 0, .)``.
    """
    diff = x - y
    return jnp.minimum(diff * diff, 1.0)


def complement(x: jax.Array) -> jax.Array:
    """``1 - x``, rounded once, written ``2 (1/2 - x/2)``: a literal 1 would be shared with the seeds (rule 1)."""
    return 2.0 * (0.5 - 0.5 * x)


def row_select(condition: jax.Array, value: jax.typing.ArrayLike) -> jax.Array:
    """``value`` where a per-row ``condition`` holds, else 0, written with ``-0.0``.

    A ``0.0`` would be CSE-shared with another fusion's select, and the shared broadcast written
    out at the logits' size (rule 1).
    """
    return jnp.where(condition, value, -0.0)


def nonnegative_part(x: jax.Array) -> jax.Array:
    """``max(x, 0)``, written ``max(x, -0.0)``: a literal 0 would be shared with the seeds (rule 1)."""
    return jnp.maximum(x, -0.0)


def times_infinity(value: jax.Array, weight: jax.Array) -> jax.Array:
    """``value * weight`` for ``value`` in [0, +inf], with the limit ``inf * 0 = 0``, arithmetic only (rule 1).

    The value is capped at the largest float, and the product scaled by the largest float again
    where the value was ``+inf``: that overflows to ``sign(w) * inf`` for a normal ``w`` and
    leaves ``0 * largest = 0``. The scale is a step function, so it carries no derivative.
    """
    largest = jnp.finfo(value.dtype).max
    finite = jnp.minimum(value, largest)
    scale = 2.0 * (0.5 + 0.5 * jax.lax.stop_gradient(jnp.minimum(value - finite, largest)))
    return (finite * weight) * scale


def divide_by_row(numerators: jax.Array, row_values: jax.Array) -> jax.Array:
    """``numerators / row_values`` (a per-row value broadcast), correctly rounded (rule 3).

    Adding ``0 * numerators`` gives the divisor the numerators' shape, which XLA does not rewrite
    into a reciprocal; the addition is fused and costs nothing measurable.
    """
    return numerators / (row_values + 0.0 * numerators)


def row_step(row_value: jax.Array, after: jax.Array) -> jax.Array:
    """``row_value``, made to depend on ``after`` (a per-row value) so that XLA broadcasts it per row (rule 1).

    Without it XLA hoists the broadcast of a row sum and writes it out at the full shape.
    """
    return row_value + 0.0 * after


def residual_barrier(residuals: Any) -> Any:
    """The residuals, behind an optimisation barrier, so the backward pass recomputes its exponentials (rule 4)."""
    return jax.lax.optimization_barrier(residuals)


def transposed(x: jax.Array) -> jax.Array:
    """``x.T``, written out behind a barrier, so that a product reading it is a plain matrix product (rule 5).

    Its cost is one copy of ``x`` (the hidden states, O(N D)), against a product that would run
    at half speed (O(N D V)).
    """
    return jax.lax.optimization_barrier(x.T)


def matmul_operand_dtype(dtype: Any) -> Any:
    """A matrix product's operand dtype for inputs of ``dtype``: ``dtype``, float32 for 16-bit floats on CPU (rule 6).

    Accelerators multiply bfloat16 and float16 at a multiple of the float32 rate, so there the
    operands keep their dtype (the products accumulate in float32 all the same); XLA-CPU does not.
    The choice is made at trace time from ``jax.default_backend()``.
    """
    dtype = jnp.dtype(dtype)
    if jax.default_backend() == "cpu" and jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32:
        return jnp.dtype(jnp.float32)
    return dtype
