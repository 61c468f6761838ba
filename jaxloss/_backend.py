"""The platform seam: every formulation that exists to steer one XLA backend, named, with its plain form.

The costs' formulas call these primitives wherever the obvious expression would make a
compiler write out an array the size of the logits, undo a compensated sum, or round twice.
Two kinds:

* **Guards for every backend** (no branch): :func:`computed_one`, :func:`unfused_product`,
  :func:`divide_by_row` and :func:`barrier`. Each keeps a value as written where a compiler
  would change it; :func:`computed_one` defeats a rewrite that XLA-CPU and XLA-GPU both make,
  :func:`barrier` a sharing that XLA-CPU and XLA-GPU both choose (rules 4 and 8).
* **Per-platform primitives**, made by :func:`per_platform`: an XLA-CPU form (the measured
  trick) and a portable form (the plain mathematical expression), chosen where the program is
  lowered, with ``jax.lax.platform_dependent``, so a program exported or compiled for a GPU or
  TPU gets the portable form even when traced on a CPU host. Both forms compute the same value,
  in the same dtype, over the domain each docstring states, or within the few ulps it states
  where the portable form is the more exact one (``_compensated.divide``, ``exp_rounded`` and
  ``exp_times``); ``tests/test_backend.py`` compares them. A platform gets a form of its own
  only with a measured reason written beside it. The primitives outside this module
  (``_compensated``'s three, ``_divergence.safe_log``) use :func:`per_platform` the same way.

Setting the environment variable ``JAXLOSS_PORTABLE=1`` before jaxloss is imported selects the
portable forms on every platform, the CPU included: the accelerators' formulations are then
tested on the CPU (CI runs the numerics tests that way).

The XLA-CPU rules that the CPU forms serve (jaxlib 0.8-0.10, 2-core x86-64):

1. Its fused reduction kernel (YNNPACK) takes only arithmetic producers. A ``compare``, a
   ``select``, a ``clamp``, or a constant or row broadcast that another fusion also uses, makes
   it materialise the reduction's operand first: at 2048x32768 float32 that is 256 MB of
   temporaries, and the sum of exponentials goes from 12 ms to about 40 ms.
2. Its algebraic simplifier folds ``(1 + x) - 1`` to ``x`` when the 1 is a literal, which undoes a
   compensated sum; it cannot fold a 1 that is computed from the data. XLA-GPU's does the same
   (deviceless H200 compilation turns ``(1 + x) - 1`` into a copy of ``x``): a guard for every
   backend.
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
   product :math:`y e^{-|z|}` that a two-term sum reads, alone among the eight. The deviceless
   H200 PTX of the poly-1 loss (jax 0.10.2) shows no contraction of the library's arithmetic
   (its ``fma.rn`` all come from libdevice), but contraction is XLA's to choose per backend and
   version, and the guard costs nothing measurable: it stays on every backend.

8. XLA-GPU and XLA-TPU share a costly value (an ``exp``, the compensated probabilities) that
   two passes compute from the same inputs by writing it out in float32: one fusion writes it
   beside its own output, and the other reads it back. In float32 the array can take the
   buffer of the float32 gradient and shows as no temporary; with bfloat16 inputs the gradient
   is bfloat16, and the array is two logits-sized arrays more. Value_and_grad of the mean at
   8192x32768 bfloat16 (jax 0.10.2, deviceless H200 and v5e; optax's figures in brackets):
   the sigmoid costs wrote ``exp(-|z|)`` on the H200, 2.00 arrays (1.00); the focal loss five
   float32 and three boolean arrays of its parts, 11.5 on the H200 (10.0); poly-1 the seed's
   probabilities, 2.01 on the H200 (0.02) and 2.00 on the v5e (0). An optimisation barrier on
   the inputs as stored (the bfloat16 logits and labels, never a float32 copy, which the
   barrier would write out) and on row statistics makes the later pass read other values, so
   each pass recomputes from the bfloat16 inputs: each of these then writes none (under 0.01
   arrays, float32 included; poly-1 needs one between its forward pass and its seed and one
   inside the seed on the H200, either on the v5e). The rules keep their inputs as stored for
   this (``_rules``). Not timed on a device: on the H200's bandwidth a pass that reads the
   bfloat16 inputs again moves fewer bytes than one float32 array written and read back.

Rule 3's rewrite is XLA-CPU's, and the guard stays on every backend, so that the portable run on
the CPU does not round twice. XLA-GPU keeps the division, but lowers a float32 one to the
approximate ``div.full.f32`` (up to 2 ulp): where a cost needs the quotient correctly rounded on
every backend, it calls ``_compensated.divide``, a per-platform primitive like those below.

Each primitive states which rule it serves. ``tests/test_transforms.py`` checks the CPU's
compiled temporaries of every cost, ``tests/test_accelerators.py`` the GPU's and TPU's.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp

#: Whether the portable forms are used on every platform (``JAXLOSS_PORTABLE=1`` at import).
PORTABLE = os.environ.get("JAXLOSS_PORTABLE", "") not in ("", "0")

#: Every per-platform primitive by name, for the tests that compare their forms.
PRIMITIVES: dict[str, Any] = {}


F = TypeVar("F", bound=Callable[..., Any])


def per_platform(*, cpu: Callable[..., Any]) -> Callable[[F], F]:
    """Makes the decorated plain form a primitive whose XLA-CPU form is ``cpu``.

    Positional arguments are arrays (or pytrees of them); keyword arguments are static. The
    primitive calls ``jax.lax.platform_dependent(*args, cpu=cpu, default=plain)``, which
    traces both forms and keeps one when the program is lowered; a program lowered for one
    platform holds only that platform's form. The forms stay reachable as ``primitive.cpu`` and
    ``primitive.portable``. Under ``JAXLOSS_PORTABLE=1`` the primitive is the plain form.
    """

    def make(portable: F) -> F:
        @functools.wraps(portable)
        def primitive(*args: Any, **static: Any) -> Any:
            if PORTABLE:
                return portable(*args, **static)
            return jax.lax.platform_dependent(
                *args, cpu=functools.partial(cpu, **static), default=functools.partial(portable, **static)
            )

        primitive.cpu = cpu  # type: ignore[attr-defined]
        primitive.portable = portable  # type: ignore[attr-defined]
        PRIMITIVES[portable.__name__] = primitive
        return primitive  # type: ignore[return-value]

    return make


# --- guards for every backend ---------------------------------------------------------------------


def computed_one(x: jax.Array) -> jax.Array:
    """1 of ``x``'s dtype (0 where ``x`` is NaN), computed from ``x`` so that XLA cannot fold it (rule 2)."""
    return (x == x).astype(x.dtype)


def unfused_product(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a * b``, rounded once, plus a computed zero, so that no later addition fuses with the multiplication (rule 7).

    The multiply-add that a code generator may form from it, :math:`\\mathrm{fma}(a, b, 0)`,
    rounds to the same product, and its readers then see a value rather than a multiplication.
    """
    return a * b + 0.0 * computed_one(a)


def barrier(values: Any) -> Any:
    """``values`` behind an optimisation barrier on every backend: a later pass recomputes from them (rules 4, 8).

    For a rule's residuals (the inputs as stored, and row statistics) where sharing the forward
    pass's work with the seed costs on every backend: on XLA-CPU time (rule 4), on XLA-GPU a
    float32 array of the logits' size (rule 8). A barrier on a parameter writes nothing.
    """
    return jax.lax.optimization_barrier(values)


def divide_by_row(numerators: jax.Array, row_values: jax.Array) -> jax.Array:
    """``numerators / row_values`` (a per-row value broadcast), rounded once, for finite numerators (rule 3).

    Correctly rounded where the backend's division is (XLA-CPU; XLA-GPU's float32 division is
    within 2 ulp, see ``_compensated.divide``). Adding ``0 * numerators`` gives the divisor the
    numerators' shape, which XLA-CPU does not rewrite into a reciprocal; the addition is fused
    and costs nothing measurable. The guard stays on every backend, so that the portable run on
    the CPU (``JAXLOSS_PORTABLE=1``) does not round twice either.
    """
    return numerators / (row_values + 0.0 * numerators)


# --- per-platform primitives: the XLA-CPU form, then the plain form it stands for ----------------


def _twice_below_zero_cpu(x: jax.Array) -> jax.Array:
    sign = jnp.sign(-x)
    return sign + jnp.abs(sign)


@per_platform(cpu=_twice_below_zero_cpu)
def twice_below_zero(x: jax.Array) -> jax.Array:
    """The indicator ``2 [x < 0]``, NaN where ``x`` is NaN; on XLA-CPU ``sign(-x) + |sign(-x)|`` (rule 1)."""
    return jnp.where(x < 0, 2.0, jnp.where(x == x, 0.0, x)).astype(x.dtype)


def _not_equal_indicator_cpu(x: jax.Array, y: jax.Array) -> jax.Array:
    diff = x - y
    return jnp.minimum(diff * diff, 1.0)


@per_platform(cpu=_not_equal_indicator_cpu)
def not_equal_indicator(x: jax.Array, y: jax.Array) -> jax.Array:
    """The indicator ``[x != y]`` for integer-valued floats; on XLA-CPU ``min((x - y)^2, 1)`` (rule 1).

    Both forms agree wherever ``x - y`` is exact: class ids below ``2**24`` in float32. Measured
    at 2048x32768 float32 on XLA-CPU, a sum of ``exp(z - M)`` takes 43 ms alone, 58 ms times the
    CPU form, 72 ms times ``min(|x - y|, 1)``, 106 ms times ``|sign(x - y)|`` and 186 ms with
    ``where(x == y, 0, .)``.
    """
    return (x != y).astype(jnp.result_type(x, y))


def _complement_cpu(x: jax.Array) -> jax.Array:
    return 2.0 * (0.5 - 0.5 * x)


@per_platform(cpu=_complement_cpu)
def complement(x: jax.Array) -> jax.Array:
    """``1 - x``, rounded once; on XLA-CPU ``2 (1/2 - x/2)``: a literal 1 would be shared with the seeds (rule 1).

    The forms agree for normal ``x`` (halving a subnormal may round it).
    """
    return 1.0 - x


def _row_select_cpu(condition: jax.Array, value: jax.typing.ArrayLike) -> jax.Array:
    return jnp.where(condition, value, -0.0)


@per_platform(cpu=_row_select_cpu)
def row_select(condition: jax.Array, value: jax.typing.ArrayLike) -> jax.Array:
    """``value`` where a per-row ``condition`` holds, else 0; on XLA-CPU the 0 is ``-0.0`` (rule 1).

    A ``0.0`` would be CSE-shared with another fusion's select, and the shared broadcast written
    out at the logits' size.
    """
    return jnp.where(condition, value, 0.0)


def _nonnegative_part_cpu(x: jax.Array) -> jax.Array:
    return jnp.maximum(x, -0.0)


@per_platform(cpu=_nonnegative_part_cpu)
def nonnegative_part(x: jax.Array) -> jax.Array:
    """``max(x, 0)``; on XLA-CPU ``max(x, -0.0)``: a literal 0 would be shared with the seeds (rule 1)."""
    return jnp.maximum(x, 0.0)


def _nonpositive_part_cpu(x: jax.Array) -> jax.Array:
    return jnp.minimum(x, -0.0)


@per_platform(cpu=_nonpositive_part_cpu)
def nonpositive_part(x: jax.Array) -> jax.Array:
    """``min(x, 0)``; on XLA-CPU ``min(x, -0.0)``: a literal 0 would be shared with the seeds (rule 1)."""
    return jnp.minimum(x, 0.0)


def _infinite_excess_cpu(x: jax.Array) -> jax.Array:
    largest = jnp.finfo(x.dtype).max
    return jnp.maximum(x, largest) - largest


@per_platform(cpu=_infinite_excess_cpu)
def infinite_excess(x: jax.Array) -> jax.Array:
    """``+inf`` where ``x`` is ``+inf``, NaN where it is NaN, else 0 (rule 1).

    On XLA-CPU ``max(x, largest) - largest``: arithmetic only, where a select would break a fused
    reduction.
    """
    return jnp.where(x == jnp.inf, x, jnp.where(x == x, 0.0, x)).astype(x.dtype)


def _times_infinity_cpu(value: jax.Array, weight: jax.Array) -> jax.Array:
    largest = jnp.finfo(value.dtype).max
    finite = jnp.minimum(value, largest)
    scale = 2.0 * (0.5 + 0.5 * jax.lax.stop_gradient(jnp.minimum(value - finite, largest)))
    return (finite * weight) * scale


@per_platform(cpu=_times_infinity_cpu)
def times_infinity(value: jax.Array, weight: jax.Array) -> jax.Array:
    """``value * weight`` for ``value`` in [0, +inf], with the limit ``inf * 0 = 0`` (rule 1).

    The XLA-CPU form is arithmetic only: the value is capped at the largest float, and the
    product scaled by the largest float again where the value was ``+inf``, which overflows to
    ``sign(w) * inf`` for a normal ``w`` and leaves ``0 * largest = 0``. The forms agree for a
    normal or zero ``weight``.
    """
    return jnp.where(weight == 0, jnp.zeros_like(value * weight), value * weight)


def _is_zero_cpu(x: jax.Array) -> jax.Array:
    return (x + x) == 0


@per_platform(cpu=_is_zero_cpu)
def is_zero(x: jax.Array) -> jax.Array:
    """``x == 0`` as the platform's arithmetic reads ``x``.

    XLA-CPU reads a subnormal operand as 0 in arithmetic (``max(t, tiny)`` is ``tiny``) but
    not always in a comparison (a bfloat16 target of 3.7e-40 compared unequal to 0 in
    ``jaxloss verify --full``), so its form compares ``x + x``, which the arithmetic reads: a
    value the formulas already read as 0 gets the rules of 0. (``|x| < tiny`` gives the same
    value, but XLA-CPU shares ``tiny`` with the clamp of :func:`jaxloss._divergence.safe_log`
    and writes an inputs-sized array: rule 1.) The forms agree for zero, normal, infinite and
    NaN ``x``.
    """
    return x == 0


def _row_step_cpu(row_value: jax.Array, after: jax.Array) -> jax.Array:
    return row_value + 0.0 * after


@per_platform(cpu=_row_step_cpu)
def row_step(row_value: jax.Array, after: jax.Array) -> jax.Array:
    """``row_value``; on XLA-CPU made to depend on ``after`` (a finite per-row value) (rule 1).

    Without the dependence XLA-CPU hoists the broadcast of a row sum and writes it out at the
    full shape, or fuses two row sums into one slower multi-output loop.
    """
    del after
    return row_value


def _residual_barrier_cpu(residuals: Any) -> Any:
    return jax.lax.optimization_barrier(residuals)


@per_platform(cpu=_residual_barrier_cpu)
def residual_barrier(residuals: Any) -> Any:
    """The residuals; on XLA-CPU behind an optimisation barrier, so the backward pass recomputes (rule 4)."""
    return residuals


def _accelerator_barrier_cpu(values: Any) -> Any:
    return values


@per_platform(cpu=_accelerator_barrier_cpu)
def accelerator_barrier(values: Any) -> Any:
    """``values`` behind an optimisation barrier; on XLA-CPU as they are (rules 4 and 8).

    For the residuals of poly-1 and the focal loss, and between the two passes of poly-1's seed,
    whose values XLA-CPU shares faster than it recomputes them (1024x4096 float32 poly-1:
    106 ms without a barrier, 142 ms with one; 1024x1024 focal: 86 ms and 224 ms), where
    XLA-GPU and XLA-TPU share them through a float32 array of the logits' size (rule 8).
    """
    return jax.lax.optimization_barrier(values)


def _transposed_cpu(x: jax.Array) -> jax.Array:
    return jax.lax.optimization_barrier(x.T)


@per_platform(cpu=_transposed_cpu)
def transposed(x: jax.Array) -> jax.Array:
    """``x.T``; on XLA-CPU written out behind a barrier, so a product reading it is a plain matrix product (rule 5).

    Its cost is one copy of ``x`` (the hidden states, O(N D)), against a product that would run
    at half speed (O(N D V)).
    """
    return x.T


def _dot_cpu(a: jax.Array, b: jax.Array, *, operand: Any, compute: Any, transpose_b: bool = False) -> jax.Array:
    wide = jnp.float32 if jnp.finfo(operand).bits < 32 else operand
    return _product(a.astype(wide), b.astype(wide), compute, transpose_b)


@per_platform(cpu=_dot_cpu)
def dot(a: jax.Array, b: jax.Array, *, operand: Any, compute: Any, transpose_b: bool = False) -> jax.Array:
    """``a @ b`` (``a @ b.T`` with ``transpose_b``) of ``operand`` values, accumulated in ``compute`` (rule 6).

    Accelerators multiply bfloat16 and float16 at a multiple of the float32 rate, so there the
    operands are cast to ``operand``. XLA-CPU has no 16-bit matrix unit: its form multiplies
    float32 copies (at N=2048, D=512, V=32768, ``h @ W`` took 1022 ms with bfloat16 operands,
    750 ms on float32 copies), which also leaves a float32 operand such as a gradient unrounded.
    The forms agree where the operands hold ``operand`` values, up to the order of the additions.
    """
    return _product(a.astype(operand), b.astype(operand), compute, transpose_b)


def _product(a: jax.Array, b: jax.Array, compute: Any, transpose_b: bool) -> jax.Array:
    dims = (((a.ndim - 1,), (b.ndim - 1 if transpose_b else 0,)), ((), ()))
    return jax.lax.dot_general(a, b, dims, preferred_element_type=compute)
