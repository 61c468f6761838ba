"""Every cost under JAX's transformations, and what each rule saves for the backward pass.

* ``jaxloss`` (``custom_vjp``): ``jit``, ``vmap``, ``grad``, ``value_and_grad``, ``hessian``,
  grad-of-grad and ``checkpoint`` work and agree with the eager call and with the reference.
  Forward mode (``jvp``, ``jacfwd``) is a ``TypeError``: it needs ``jaxloss.forward``.
* ``jaxloss.forward`` (``custom_jvp``): ``jvp``, ``jacfwd`` and ``check_grads`` to order 2 in
  both modes.
* Residuals: the softmax rules of ``jaxloss`` save no logits-sized array besides their inputs;
  those of ``jaxloss.forward`` save the seed.

One layout per cost (3 examples by 5 classes, classes last), with soft labels that do not sum to
one; second derivatives in float64. Transformed functions are jitted so that each compiles once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.core import Var
from jax.test_util import check_grads

import jaxloss
from jaxloss._costs import NAMES

REFERENCE = jaxloss.reference
FORWARD = jaxloss.forward
INTEGER = "softmax_cross_entropy_with_integer_labels"
PROBABILITY = ("binary_cross_entropy", "categorical_cross_entropy", "multilabel_cross_entropy")
ELEMENTWISE = ("sigmoid_binary_cross_entropy", "binary_cross_entropy", "sigmoid_focal_loss")
KL = ("kl_divergence", "kl_divergence_with_log_targets")
SOFTMAX_COSTS = ("softmax_cross_entropy", INTEGER, "safe_softmax_cross_entropy")
SHAPE = (3, 5)


def inputs(name: str, dtype=np.float32, seed: int = 0):
    """Moderate inputs: logits in [-3, 3], probabilities in [0.1, 0.9], soft labels in [0, 1]."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.1, 0.9, SHAPE) if name in PROBABILITY else rng.uniform(-3.0, 3.0, SHAPE)
    if name == INTEGER:
        y = rng.integers(0, SHAPE[-1], SHAPE[:-1]).astype(np.int32)
    elif name in KL:
        # Targets away from 0, where t log t is too curved for check_grads' finite differences.
        y = rng.uniform(0.1, 1.0, SHAPE)
        y = (np.log(y) if name == "kl_divergence_with_log_targets" else y).astype(dtype)
    else:
        y = rng.uniform(0.0, 1.0, SHAPE).astype(dtype)
    return x.astype(dtype), y


def argnums(name: str):
    """The differentiable arguments: the inputs, and the labels when they are floating."""
    return 0 if name == INTEGER else (0, 1)


def total(ns, name: str):
    """The summed cost, a scalar function of (inputs, labels)."""
    cost = getattr(ns, name)
    return lambda x, y: jnp.sum(cost(x, y))


def assert_tree_close(actual, expected, rtol, atol=0.0, what=""):
    actual_leaves, actual_tree = jax.tree.flatten(actual)
    expected_leaves, expected_tree = jax.tree.flatten(expected)
    assert actual_tree == expected_tree, what
    for got, want in zip(actual_leaves, expected_leaves, strict=True):
        got, want = np.asarray(got), np.asarray(want)
        assert got.shape == want.shape, what
        assert np.all(np.isfinite(want)), what
        scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * scale, err_msg=what)


# --- jaxloss: reverse mode and the other transformations -----------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_jit_equals_eager_and_reference(name):
    cost = getattr(jaxloss, name)
    x, y = inputs(name)
    eager = cost(x, y)
    jitted = jax.jit(cost)(x, y)
    assert eager.shape == jitted.shape == (SHAPE if name in ELEMENTWISE else SHAPE[:1])
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(jitted, jax.jit(getattr(REFERENCE, name))(x, y), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_examples_equals_the_batched_call(name):
    cost = getattr(jaxloss, name)
    x, y = inputs(name)
    per_row = jax.jit(jax.vmap(cost))(x, y)  # each row on its own: classes are its only axis
    np.testing.assert_allclose(per_row, cost(x, y), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_grad_equals_reference_grad(name):
    x, y = inputs(name)

    @jax.jit
    def both(x, y):
        return [jax.grad(total(ns, name), argnums=argnums(name))(x, y) for ns in (jaxloss, REFERENCE)]

    got, want = both(x, y)
    assert_tree_close(got, want, rtol=1e-5, atol=1e-6, what=name)


@pytest.mark.parametrize("name", NAMES)
def test_value_and_grad_equals_value_and_grad_separately(name):
    x, y = inputs(name)
    loss = total(jaxloss, name)
    value, grads = jax.jit(jax.value_and_grad(loss, argnums=argnums(name)))(x, y)
    np.testing.assert_allclose(value, loss(x, y), rtol=1e-6)
    np.testing.assert_allclose(value, total(REFERENCE, name)(x, y), rtol=1e-5)
    assert_tree_close(grads, jax.jit(jax.grad(loss, argnums=argnums(name)))(x, y), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_hessian_equals_reference_hessian_in_float64(name, x64):
    x, y = inputs(name, np.float64)

    @jax.jit
    def hessians(x, y):
        return [jax.hessian(total(ns, name), argnums=argnums(name))(x, y) for ns in (jaxloss, FORWARD, REFERENCE)]

    custom_vjp, custom_jvp, reference = hessians(x, y)
    # The hessian is not trivially zero: the cost is curved in its inputs (the KL divergence only
    # in its targets: it is linear in the log-predictions).
    assert max(np.max(np.abs(leaf)) for leaf in jax.tree.leaves(reference)) > 1e-2
    assert_tree_close(custom_vjp, reference, rtol=1e-10, atol=1e-13, what=f"jaxloss.{name}")
    assert_tree_close(custom_jvp, reference, rtol=1e-10, atol=1e-13, what=f"jaxloss.forward.{name}")


@pytest.mark.parametrize("name", NAMES)
def test_grad_of_grad_equals_reference_in_float64(name, x64):
    """Reverse over reverse: the gradient of <v, grad L(x)>, a Hessian-vector product."""
    x, y = inputs(name, np.float64)
    v = np.random.default_rng(1).normal(size=SHAPE)

    wrt = 1 if name in KL else 0  # the KL divergence is linear in the log-predictions

    @jax.jit
    def hvps(x, y):
        out = []
        for ns in (jaxloss, REFERENCE):
            inner = jax.grad(total(ns, name), argnums=wrt)

            def product(a, inner=inner):
                return jnp.vdot(v, inner(*((a, y) if wrt == 0 else (x, a))))

            out.append(jax.grad(product)((x, y)[wrt]))
        return out

    got, want = hvps(x, y)
    assert np.max(np.abs(want)) > 1e-2
    assert_tree_close(got, want, rtol=1e-10, atol=1e-13, what=name)


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_grad_equals_plain_grad_and_reference(name):
    x, y = inputs(name)
    loss = total(jaxloss, name)
    remat = jax.jit(jax.grad(jax.checkpoint(loss), argnums=argnums(name)))
    assert "remat" in str(jax.make_jaxpr(jax.grad(jax.checkpoint(loss), argnums=argnums(name)))(x, y))
    got = remat(x, y)
    assert_tree_close(got, jax.jit(jax.grad(loss, argnums=argnums(name)))(x, y), rtol=1e-6, atol=1e-7)
    reference = jax.jit(jax.grad(total(REFERENCE, name), argnums=argnums(name)))(x, y)
    assert_tree_close(got, reference, rtol=1e-5, atol=1e-6, what=name)


@pytest.mark.parametrize("name", NAMES)
def test_custom_vjp_cost_under_jvp_raises_type_error_forward_mode_needs_jaxloss_forward(name):
    x, y = inputs(name)
    cost = getattr(jaxloss, name)
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(lambda x: cost(x, y), (x,), (np.ones_like(x),))
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jacfwd(lambda x: cost(x, y))(x)
    # The same call on the custom_jvp twin works.
    _, tangent = jax.jvp(lambda x: getattr(FORWARD, name)(x, y), (x,), (np.ones_like(x),))
    assert np.all(np.isfinite(tangent))


# --- jaxloss.forward: forward mode ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_forward_jvp_equals_reference_jvp(name):
    x, y = inputs(name)
    rng = np.random.default_rng(2)
    dx = rng.normal(size=SHAPE).astype(np.float32)
    dy = rng.normal(size=SHAPE).astype(np.float32)

    @jax.jit
    def jvps(x, y):
        out = []
        for ns in (FORWARD, REFERENCE):
            cost = getattr(ns, name)
            if name == INTEGER:
                out.append(jax.jvp(lambda x, cost=cost: cost(x, y), (x,), (dx,)))
            else:
                out.append(jax.jvp(cost, (x, y), (dx, dy)))
        return out

    got, want = jvps(x, y)
    assert np.max(np.abs(want[1])) > 1e-2
    assert_tree_close(got, want, rtol=1e-5, atol=1e-6, what=name)


@pytest.mark.parametrize("name", NAMES)
def test_forward_jacfwd_equals_reference_jacrev_in_float64(name, x64):
    x, y = inputs(name, np.float64)

    @jax.jit
    def jacobians(x, y):
        return (
            jax.jacfwd(getattr(FORWARD, name), argnums=argnums(name))(x, y),
            jax.jacrev(getattr(REFERENCE, name), argnums=argnums(name))(x, y),
        )

    got, want = jacobians(x, y)
    assert_tree_close(got, want, rtol=1e-12, atol=1e-14, what=name)


@pytest.mark.parametrize("name", NAMES)
def test_forward_check_grads_order_2_in_forward_mode_float64(name, x64):
    """Forward over forward against finite differences. Reverse over reverse is the grad-of-grad test's, and
    every Hessian the exact Hessian test's."""
    x, y = inputs(name, np.float64)
    cost = getattr(FORWARD, name)
    if name == INTEGER:
        check_grads(jax.jit(lambda x: cost(x, y)), (x,), order=2, modes=("fwd",))
    else:
        check_grads(jax.jit(cost), (x, y), order=2, modes=("fwd",))


# --- residuals --------------------------------------------------------------------------------------------------

_ALIASING = {"convert_element_type", "reduce_precision", "copy", "copy_p"}


def logits_sized_residuals(f, *args) -> tuple[int, int]:
    """Counts the residuals of ``jax.vjp(f, *args)`` with the shape of ``args[0]``.

    Returns ``(all of them, those computed in the forward pass)``. An argument, a closed-over
    constant, or a cast of one to its own dtype (a no-op) is not computed.
    """
    closed = jax.make_jaxpr(lambda *a: jax.tree.leaves(jax.vjp(f, *a)[1]))(*args)
    jaxpr = closed.jaxpr
    aliases = set(jaxpr.invars) | set(jaxpr.constvars)
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in _ALIASING and len(eqn.invars) == 1:
            (source,), (out,) = eqn.invars, eqn.outvars
            if source in aliases and (source.aval.shape, source.aval.dtype) == (out.aval.shape, out.aval.dtype):
                aliases.add(out)
    shape = np.shape(args[0])
    sized = [v for v in jaxpr.outvars if isinstance(v, Var) and v.aval.shape == shape]
    return len(sized), sum(v not in aliases for v in sized)


def softmax_vjp_case(ns, name: str):
    x, y = inputs(name)
    cost = getattr(ns, name)
    if name == INTEGER:
        return (lambda x: cost(x, y)), (x,)
    return cost, (x, y)


@pytest.mark.parametrize("name", SOFTMAX_COSTS)
def test_custom_vjp_softmax_saves_no_logits_sized_residual_besides_its_inputs(name):
    f, args = softmax_vjp_case(jaxloss, name)
    count, computed = logits_sized_residuals(f, *args)
    assert computed == 0, f"jaxloss.{name} saves {computed} computed N x C arrays for the backward pass"
    assert count <= len(args)  # at most the logits and the soft labels themselves


@pytest.mark.parametrize("name", SOFTMAX_COSTS)
def test_forward_softmax_saves_its_seed_a_logits_sized_residual(name):
    f, args = softmax_vjp_case(FORWARD, name)
    _, computed = logits_sized_residuals(f, *args)
    assert computed >= 1  # the custom_jvp rule's seed, where the custom_vjp rule recomputes it
    _, computed_by_custom_vjp = logits_sized_residuals(*softmax_vjp_case(jaxloss, name)[:1], *args)
    assert computed > computed_by_custom_vjp


# The costs whose rules take their inputs as stored (``_rules.stored_pair``); the probability costs widen theirs
# ahead of the rule.
STORED = tuple(name for name in NAMES if name not in PROBABILITY)


@pytest.mark.parametrize("name", STORED)
def test_custom_vjp_saves_bfloat16_inputs_as_stored_not_a_float32_copy(name):
    """The rules save the bfloat16 inputs themselves: a float32 copy among the residuals is what a barrier
    (``_backend``, rules 4 and 8) or XLA-TPU's gather writes out at the logits' size."""
    x, y = inputs(name)
    x = x.astype(jnp.bfloat16)
    y = y if name == INTEGER else y.astype(jnp.bfloat16)
    f = getattr(jaxloss, name)
    closed = jax.make_jaxpr(lambda *a: jax.tree.leaves(jax.vjp(f, *a)[1]))(x, y)
    sized = [v.aval for v in closed.jaxpr.outvars if isinstance(v, Var) and v.aval.shape == x.shape]
    assert sized and all(aval.dtype == jnp.bfloat16 for aval in sized), sized


def test_residual_counter_sees_the_reference_save_softmax_probabilities():
    """The counter itself: the autodiff reference keeps exp(z) and friends, N x C each."""
    f, args = softmax_vjp_case(REFERENCE, "softmax_cross_entropy")
    _, computed = logits_sized_residuals(f, *args)
    assert computed >= 2


# --- compiled temporaries ---------------------------------------------------------------------


def _temporary_inputs(name, shape):
    logits = jax.random.normal(jax.random.key(0), shape)
    classes = jax.random.randint(jax.random.key(1), shape[:1], 0, shape[1])
    if name == "softmax_cross_entropy_with_integer_labels":
        return logits, classes
    if name.startswith(("softmax", "safe", "poly")):
        return logits, jax.nn.one_hot(classes, shape[1])
    if name == "kl_divergence":
        return jax.nn.log_softmax(logits), jax.nn.softmax(2.0 * logits)
    if name == "kl_divergence_with_log_targets":
        return jax.nn.log_softmax(logits), jax.nn.log_softmax(2.0 * logits)
    labels = jax.random.bernoulli(jax.random.key(1), 0.5, shape).astype(jnp.float32)
    if name.startswith("sigmoid"):
        return logits, labels
    probs = jax.nn.softmax(logits) if name == "categorical_cross_entropy" else jax.nn.sigmoid(logits)
    return probs, labels if name != "categorical_cross_entropy" else jax.nn.one_hot(classes, shape[1])


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the fusion it checks is XLA-CPU's")
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("ns", [jaxloss, FORWARD], ids=["jaxloss", "jaxloss.forward"])
def test_value_and_grad_of_the_mean_writes_no_logits_sized_temporary_on_the_cpu(name, ns):
    # The formulas are written so that XLA-CPU computes each sum inside one fused reduction and
    # the backward pass in one loop that writes the gradient (jaxloss._backend's rules); a
    # formulation that breaks a fusion writes an array of the inputs' size first.
    shape = (256, 512)
    x, y = _temporary_inputs(name, shape)
    step = jax.jit(jax.value_and_grad(lambda a, b: jnp.mean(getattr(ns, name)(a, b))))
    temporaries = step.lower(x, y).compile().memory_analysis().temp_size_in_bytes
    one_array = x.size * x.dtype.itemsize
    if name in NOT_YET_FUSED:
        # Not yet written for the fused reduction: a pin against growth, at what was measured.
        assert temporaries <= NOT_YET_FUSED[name] * one_array, temporaries
    else:
        assert temporaries < one_array, temporaries


PROBABILITY_COSTS = ("binary_cross_entropy", "categorical_cross_entropy", "multilabel_cross_entropy")
# Arrays of the inputs' size written by value_and_grad of the mean at 256x512 float32 (jaxlib
# 0.10, XLA-CPU): the probability costs' clamp selects; the focal factor's compensated
# exponentials and logarithms, which XLA writes out to share them with the seed (10 measured);
# the selects of the poly-1 terms (3.02 measured). The KL divergences write none.
NOT_YET_FUSED = {
    **dict.fromkeys(PROBABILITY_COSTS, 3),
    "sigmoid_focal_loss": 10,
    "poly_loss_cross_entropy": 3.1,
}
