"""``jaxloss.grad_norms``: the per-example gradient norms from the seeds.

* hypothesis, float64: each norm equals ``jnp.linalg.norm`` of ``jax.vmap(jax.grad(...))`` of the
  cost in ``jaxloss.reference`` (the literal formula, differentiated by autodiff), with options;
* confident rows against mpmath in float32, within 4 ulp, where the naive
  :math:`\\sum p^2 - 2p_l + 1` loses every digit; tiny and huge gradients, whose squares would
  underflow or overflow;
* masked examples give 0, NaN gives NaN, bad input raises the cost's errors;
* nothing of the logits' size is stored, on the CPU and compiled for an H200.
"""

import functools

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxloss
from jaxloss import grad_norms
from jaxloss.tools import accelerators
from jaxloss.tools.precision import ulp_error

ROWS, CLASSES = 4, 5
# The reference's literal formula cancels (p_l - 1, sigma(z) - y in float64): logits within 8 keep
# it to 1e-9 relative, and where a soft label cancels the gradient itself, to 1e-12 absolute (the
# gradients are of order 1). Confident rows are checked against mpmath below.
RTOL, ATOL = 1e-8, 1e-12


def _x64(test):
    """The test's body in float64 (hypothesis runs it many times; a fixture would run once)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        with jax.enable_x64(True):
            return test(*args, **kwargs)

    return run


def _per_example_norms(cost, x, y, per_row_axes, **options):
    """``jnp.linalg.norm(vmap(grad(cost)))`` over each example's axes: the expensive way."""

    def one(xi, yi):
        return jax.grad(lambda a: cost(a[None], yi[None], **options)[0])(xi)

    grads = jax.vmap(one)(x, y)
    return jnp.sqrt(jnp.sum(grads**2, axis=per_row_axes))


def _floats(draw, shape, scale):
    size = int(np.prod(shape))
    values = draw(st.lists(st.floats(-scale, scale), min_size=size, max_size=size))
    return np.asarray(values, np.float64).reshape(shape)


SOFTMAX_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "label_smoothing": st.floats(0.0, 0.5),
        "weights": st.lists(st.floats(0.1, 3.0), min_size=CLASSES, max_size=CLASSES).map(np.asarray),
        "z_loss": st.floats(0.0, 0.1),
        "soft_cap": st.floats(1.0, 30.0),
    },
)
SIGMOID_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "label_smoothing": st.floats(0.0, 0.5),
        "pos_weight": st.floats(0.1, 3.0),
        "weights": st.floats(0.1, 3.0),
        "soft_cap": st.floats(1.0, 30.0),
    },
)


@settings(max_examples=15, deadline=None)
@given(data=st.data(), options=SOFTMAX_OPTIONS)
@_x64
def test_integer_labels_equal_the_norm_of_vmapped_grads_in_float64(data, options):
    logits = _floats(data.draw, (ROWS, CLASSES), 8.0)
    labels = np.asarray(data.draw(st.lists(st.integers(0, CLASSES - 1), min_size=ROWS, max_size=ROWS)))
    got = grad_norms.softmax_cross_entropy_with_integer_labels(logits, labels, **options)
    want = _per_example_norms(
        jaxloss.reference.softmax_cross_entropy_with_integer_labels, logits, labels, (1,), **options
    )
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@settings(max_examples=15, deadline=None)
@given(data=st.data(), options=SOFTMAX_OPTIONS)
@_x64
def test_soft_labels_equal_the_norm_of_vmapped_grads_in_float64(data, options):
    logits = _floats(data.draw, (ROWS, CLASSES), 8.0)
    labels = np.abs(_floats(data.draw, (ROWS, CLASSES), 1.0))
    got = grad_norms.softmax_cross_entropy(logits, labels, **options)
    want = _per_example_norms(jaxloss.reference.softmax_cross_entropy, logits, labels, (1,), **options)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@settings(max_examples=10, deadline=None)
@given(data=st.data(), epsilon=st.floats(-1.0, 3.0))
@_x64
def test_poly_equals_the_norm_of_vmapped_grads_in_float64(data, epsilon):
    logits = _floats(data.draw, (ROWS, CLASSES), 8.0)
    labels = np.abs(_floats(data.draw, (ROWS, CLASSES), 1.0))
    got = grad_norms.poly_loss_cross_entropy(logits, labels, epsilon=epsilon)
    want = _per_example_norms(jaxloss.reference.poly_loss_cross_entropy, logits, labels, (1,), epsilon=epsilon)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@settings(max_examples=15, deadline=None)
@given(data=st.data(), options=SIGMOID_OPTIONS)
@_x64
def test_sigmoid_costs_equal_the_norm_of_vmapped_grads_in_float64(data, options):
    logits = _floats(data.draw, (ROWS, CLASSES), 8.0)
    labels = np.abs(_floats(data.draw, (ROWS, CLASSES), 1.0))
    got = grad_norms.sigmoid_multilabel_cross_entropy(logits, labels, **options)
    want = _per_example_norms(jaxloss.reference.sigmoid_multilabel_cross_entropy, logits, labels, (1,), **options)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    # element-wise: the magnitude of each element's gradient
    got = grad_norms.sigmoid_binary_cross_entropy(logits, labels, **options)
    want = jnp.abs(
        jax.grad(lambda z: jnp.sum(jaxloss.reference.sigmoid_binary_cross_entropy(z, labels, **options)))(logits)
    )
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@settings(max_examples=10, deadline=None)
@given(data=st.data(), gamma=st.floats(0.0, 4.0), alpha=st.one_of(st.none(), st.floats(0.0, 1.0)))
@_x64
def test_focal_equals_the_magnitude_of_the_grad_in_float64(data, gamma, alpha):
    logits = _floats(data.draw, (ROWS, CLASSES), 8.0)
    labels = np.abs(_floats(data.draw, (ROWS, CLASSES), 1.0))
    got = grad_norms.sigmoid_focal_loss(logits, labels, alpha=alpha, gamma=gamma)
    grad = jax.grad(lambda z: jnp.sum(jaxloss.reference.sigmoid_focal_loss(z, labels, alpha=alpha, gamma=gamma)))
    np.testing.assert_allclose(got, jnp.abs(grad(logits)), rtol=RTOL, atol=ATOL)


@settings(max_examples=10, deadline=None)
@given(data=st.data())
@_x64
def test_kl_divergences_equal_the_norm_of_vmapped_grads_in_float64(data):
    log_predictions = jax.nn.log_softmax(_floats(data.draw, (ROWS, CLASSES), 10.0))
    targets = jax.nn.softmax(_floats(data.draw, (ROWS, CLASSES), 10.0))
    got = grad_norms.kl_divergence(log_predictions, targets)
    want = _per_example_norms(jaxloss.reference.kl_divergence, log_predictions, targets, (1,))
    np.testing.assert_allclose(got, want, rtol=1e-13)
    got = grad_norms.kl_divergence_with_log_targets(log_predictions, jnp.log(targets))
    want = _per_example_norms(jaxloss.reference.kl_divergence_with_log_targets, log_predictions, jnp.log(targets), (1,))
    np.testing.assert_allclose(got, want, rtol=1e-13)


def test_axes_masks_and_ignored_examples(x64):
    """Several class axes, ``where`` and ``ignore_index``: masked examples give 0."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 2, 4))
    labels = np.array([1, 7, -100])
    got = grad_norms.softmax_cross_entropy_with_integer_labels(logits, labels, axis=(1, 2), ignore_index=-100)
    flat = logits.reshape(3, 8)
    want = _per_example_norms(jaxloss.reference.softmax_cross_entropy_with_integer_labels, flat[:2], labels[:2], (1,))
    np.testing.assert_allclose(got[:2], want, rtol=1e-13)
    assert got[2] == 0.0
    where = np.array([[True, True, False, True]] * 2 + [[False] * 4])
    soft = np.abs(rng.normal(size=(3, 4)))
    got = grad_norms.sigmoid_multilabel_cross_entropy(rng.normal(size=(3, 4)) * np.nan, soft, where=where)[2]
    assert got == 0.0  # every label dropped: no NaN leaks
    z = rng.normal(size=(3, 4))
    got = grad_norms.sigmoid_multilabel_cross_entropy(z, soft, where=where)
    grads = jax.grad(lambda a: jnp.sum(jaxloss.sigmoid_multilabel_cross_entropy(a, soft, where=where)))(z)
    np.testing.assert_allclose(got, np.linalg.norm(grads, axis=1), rtol=1e-13)


def _exact_integer_norm(logits, label):
    """The exact norm of softmax(z) - onehot(l), in mpmath (the float32 inputs as they are)."""
    mp.mp.prec = 200
    z = [mp.mpf(float(v)) for v in logits]
    top = max(z)
    e = [mp.exp(v - top) for v in z]
    total = mp.fsum(e)
    others = mp.fsum(v for j, v in enumerate(e) if j != label)
    squares = [(v / total) ** 2 for j, v in enumerate(e) if j != label]
    return mp.sqrt(mp.fsum([*squares, (others / total) ** 2]))


@pytest.mark.parametrize("gap", [0.0, 1.0, 15.0, 30.0, 60.0, 80.0])
def test_confident_rows_keep_their_digits_against_mpmath(gap):
    """Within 4 ulp of the exact norm in float32, rows from uncertain to 1 - p_l = 1e-35 (every
    exponential still a normal number, which XLA-CPU does not flush); the naive
    sum of p^2 - 2 p_l + 1, and from 1e-19 on even the plain norm of the seed, lose them."""
    rng = np.random.default_rng(int(gap))
    logits = np.concatenate([[gap], rng.uniform(-2.0, 0.0, 31)]).astype(np.float32)
    got = grad_norms.softmax_cross_entropy_with_integer_labels(logits, np.int32(0))
    exact = _exact_integer_norm(logits, 0)
    assert ulp_error(float(got), exact, np.float32) <= 4.0, (gap, float(got), exact)
    if gap >= 60.0:  # the squares underflow: sqrt(sum(g**2)) of the same seed gives 0
        seed = jaxloss.seeds.softmax_cross_entropy_with_integer_labels_grad(logits, np.int32(0))
        assert float(jnp.sqrt(jnp.sum(seed**2))) == 0.0 < float(got)
    if gap >= 15.0:
        p = jax.nn.softmax(logits)
        naive = float(jnp.sqrt(jnp.maximum(jnp.sum(p**2) - 2 * p[0] + 1, 0.0)))
        assert ulp_error(naive, exact, np.float32) > 1e3


def test_huge_weights_do_not_overflow_the_squares():
    """A class weight of 1e30 makes gradients near 1e30, whose squares overflow float32."""
    logits = np.array([0.0, 0.0, 0.0], np.float32)
    weights = np.array([1e30, 1.0, 1.0], np.float32)
    got = grad_norms.softmax_cross_entropy_with_integer_labels(logits, np.int32(0), weights=weights)
    # w_l (p - onehot) = 1e30 * [-2/3, 1/3, 1/3]: norm 1e30 * sqrt(6)/3
    exact = mp.mpf(float(np.float32(1e30))) * mp.sqrt(6) / 3
    assert ulp_error(float(got), exact, np.float32) <= 4.0


def test_nan_gives_nan_and_infinities_follow_the_cost():
    nan_row = np.array([[0.0, np.nan, 1.0], [0.0, 1.0, 2.0]], np.float32)
    got = np.asarray(grad_norms.softmax_cross_entropy_with_integer_labels(nan_row, np.array([0, 1])))
    assert np.isnan(got[0]) and np.isfinite(got[1])
    got = np.asarray(grad_norms.sigmoid_multilabel_cross_entropy(nan_row, np.ones_like(nan_row)))
    assert np.isnan(got[0]) and np.isfinite(got[1])
    # a +inf logit: the gradient is finite (p = onehot of the +inf class), and so is the norm
    inf_row = np.array([[np.inf, 0.0, 0.0]], np.float32)
    wants = jaxloss.seeds.softmax_cross_entropy_with_integer_labels_grad(inf_row, np.array([1]))
    got = grad_norms.softmax_cross_entropy_with_integer_labels(inf_row, np.array([1]))
    np.testing.assert_allclose(got, np.linalg.norm(wants, axis=1), rtol=1e-7)
    assert np.all(np.isfinite(got))


def test_bfloat16_and_16_bit_inputs_give_float32_norms():
    logits = jnp.asarray([[2.0, -1.0, 0.5]], jnp.bfloat16)
    got = grad_norms.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0], jnp.uint8))
    assert got.dtype == jnp.float32
    want = _per_example_norms(
        jaxloss.reference.softmax_cross_entropy_with_integer_labels, logits.astype(jnp.float32), np.array([0]), (1,)
    )
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: grad_norms.softmax_cross_entropy_with_integer_labels(np.zeros((2, 3)), np.zeros(3, np.int32)),
            "labels",
        ),
        (lambda: grad_norms.softmax_cross_entropy(np.zeros((2, 3)), np.zeros((2, 4))), "logits"),
        (lambda: grad_norms.sigmoid_focal_loss(np.zeros(3), np.zeros(3), gamma=-1.0), "gamma"),
        (lambda: grad_norms.kl_divergence(np.zeros(3, np.int32), np.zeros(3)), "log_predictions"),
    ],
)
def test_bad_input_raises_the_costs_errors(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


NORMS = {
    "softmax_cross_entropy_with_integer_labels": lambda z, y: grad_norms.softmax_cross_entropy_with_integer_labels(
        z, jnp.zeros(z.shape[0], jnp.int32)
    ),
    "softmax_cross_entropy": lambda z, y: grad_norms.softmax_cross_entropy(z, y),
    "poly_loss_cross_entropy": lambda z, y: grad_norms.poly_loss_cross_entropy(z, y),
    "sigmoid_multilabel_cross_entropy": lambda z, y: grad_norms.sigmoid_multilabel_cross_entropy(z, y),
    "kl_divergence": lambda z, y: grad_norms.kl_divergence(z, y),
    "softmax_cross_entropy_with_integer_labels, options": lambda z, y: (
        grad_norms.softmax_cross_entropy_with_integer_labels(
            z, jnp.zeros(z.shape[0], jnp.int32), weights=jnp.linspace(0.5, 2.0, z.shape[1]), z_loss=1e-4
        )
    ),
}
COSTS = {
    "softmax_cross_entropy_with_integer_labels": lambda z, y: jaxloss.softmax_cross_entropy_with_integer_labels(
        z, jnp.zeros(z.shape[0], jnp.int32)
    ),
    "softmax_cross_entropy": lambda z, y: jaxloss.softmax_cross_entropy(z, y),
    "poly_loss_cross_entropy": lambda z, y: jaxloss.poly_loss_cross_entropy(z, y),
    "sigmoid_multilabel_cross_entropy": lambda z, y: jaxloss.sigmoid_multilabel_cross_entropy(z, y),
    "kl_divergence": lambda z, y: jaxloss.kl_divergence(z, y),
    "softmax_cross_entropy_with_integer_labels, options": lambda z, y: (
        jaxloss.softmax_cross_entropy_with_integer_labels(
            z, jnp.zeros(z.shape[0], jnp.int32), weights=jnp.linspace(0.5, 2.0, z.shape[1]), z_loss=1e-4
        )
    ),
}


@pytest.mark.parametrize("name", list(NORMS))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_on_the_cpu_at_most_the_seed_beyond_the_costs_step(name, dtype):
    """XLA-CPU writes the seed once (``_norms``): the norm's temporaries are at most the cost's
    value_and_grad's and one float32 array of the logits' size, the gradient that step returns."""
    shape = (256, 4096)
    z = jax.ShapeDtypeStruct(shape, dtype)
    norm = jax.jit(NORMS[name]).lower(z, z).compile().memory_analysis().temp_size_in_bytes
    step = jax.value_and_grad(lambda a, b: jnp.sum(COSTS[name](a, b)))
    base = jax.jit(step).lower(z, z).compile().memory_analysis().temp_size_in_bytes
    assert norm <= base + shape[0] * shape[1] * 4 + 2**16, (norm, base)


@pytest.mark.parametrize("name", list(NORMS))
def test_no_logits_sized_temporary_compiled_for_an_h200(name):
    reason = accelerators.missing("h200")
    if reason:
        pytest.skip(reason)
    shape = (2048, 8192)
    z = jax.ShapeDtypeStruct(shape, jnp.bfloat16)
    compiled = accelerators.compile_for(NORMS[name], z, z, target="h200")
    logits_bytes = shape[0] * shape[1] * 2
    assert accelerators.footprint(compiled).temp_bytes < logits_bytes / 8


@pytest.mark.parametrize("name", grad_norms.__all__)
def test_each_norm_takes_its_costs_arguments(name):
    """Same parameters, kinds and defaults as the cost: a call switches by changing the namespace."""
    import inspect

    def shape(f):
        return [(p.name, p.kind, p.default) for p in inspect.signature(f).parameters.values()]

    assert shape(getattr(grad_norms, name)) == shape(getattr(jaxloss, name))
