"""``linear_cross_entropy``: equal to the unfused cost, under every transformation, without the logits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

N, D, V = 37, 16, 300  # 300 = 4 full blocks of 64 and a remainder of 44


def _inputs(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    hidden = rng.normal(size=(N, D)).astype(dtype)
    weight = (0.5 * rng.normal(size=(D, V))).astype(dtype)
    bias = rng.normal(size=V).astype(dtype)
    labels = rng.integers(0, V, N).astype(np.int32)
    return hidden, weight, bias, labels


def _unfused(hidden, weight, labels, bias=None, **options):
    compute = jnp.float64 if hidden.dtype == jnp.float64 else jnp.float32
    logits = jnp.dot(hidden, weight, preferred_element_type=compute)
    if bias is not None:
        logits = logits + bias[None, :].astype(compute)
    return jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels, **options)


def _value_and_grads(cost, hidden, weight, bias, labels, **options):
    def total(h, w, b):
        losses = cost(h, w, labels, bias=b, **options)
        cotangent = jnp.sin(jnp.arange(N, dtype=losses.dtype))  # reduction "none": each loss its own weight
        return jnp.sum(cotangent * losses)

    return jax.jit(jax.value_and_grad(total, argnums=(0, 1, 2)))(hidden, weight, bias)


def _assert_close(got, want, rtol):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * float(np.max(np.abs(w))))


OPTIONS = [
    {},
    {"label_smoothing": 0.1},
    {"weights": np.linspace(0.1, 2.0, V)},
    {"z_loss": 1e-3, "soft_cap": 3.0},
    {"label_smoothing": 0.2, "weights": np.linspace(2.0, 0.1, V), "z_loss": 1e-3, "soft_cap": 5.0},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "+".join(o) or "plain")
def test_equals_the_unfused_cost_in_float64(options, x64):
    hidden, weight, bias, labels = _inputs()
    fused = _value_and_grads(
        lambda *a, **k: jaxloss.linear_cross_entropy(*a, block_size=64, **k), hidden, weight, bias, labels, **options
    )
    apart = _value_and_grads(_unfused, hidden, weight, bias, labels, **options)
    _assert_close(fused, apart, 1e-12)


@pytest.mark.parametrize("block_size", [None, 1, 7, 64, 300, 1000])
def test_equals_the_unfused_cost_in_float32_for_any_block(block_size):
    hidden, weight, bias, labels = _inputs(np.float32)
    fused = _value_and_grads(
        lambda *a, **k: jaxloss.linear_cross_entropy(*a, block_size=block_size, **k), hidden, weight, bias, labels
    )
    apart = _value_and_grads(_unfused, hidden, weight, bias, labels)
    _assert_close(fused, apart, 1e-5)


@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1}], ids=["plain", "smoothing"])
def test_a_block_of_masked_classes_stays_finite(options, x64):
    """A bias of -inf over whole blocks (padding classes) masks them: those blocks hold no
    probability, and joining them must not give NaN ((-inf) - (-inf)) in the loss or gradient."""
    hidden, weight, bias, labels = _inputs()
    bias[64:192] = -np.inf  # blocks 2 and 3 of 64 entirely masked
    labels = np.where((labels >= 64) & (labels < 192), 5, labels).astype(np.int32)
    fused = _value_and_grads(
        lambda *a, **k: jaxloss.linear_cross_entropy(*a, block_size=64, **k), hidden, weight, bias, labels, **options
    )
    apart = _value_and_grads(_unfused, hidden, weight, bias, labels, **options)
    value, (d_hidden, d_weight, d_bias) = fused
    assert np.isfinite(float(value)) and np.all(np.isfinite(d_hidden)) and np.all(np.isfinite(d_weight))
    np.testing.assert_array_equal(d_bias[64:192], 0.0)  # masked classes: probability 0
    _assert_close(fused, apart, 1e-12)


def test_without_bias_and_with_where_and_ignore_index(x64):
    hidden, weight, _, labels = _inputs()
    keep = np.arange(N) % 3 != 0
    labels = np.where(np.arange(N) % 5 == 0, -100, labels)
    counted = keep & (labels != -100)

    def fused(h, w):
        return jnp.sum(jaxloss.linear_cross_entropy(h, w, labels, where=keep, ignore_index=-100, block_size=50))

    def apart(h, w):
        losses = jaxloss.softmax_cross_entropy_with_integer_labels(h @ w, np.where(counted, labels, 0))
        return jnp.sum(jnp.where(counted, losses, 0.0))

    _assert_close(
        jax.jit(jax.value_and_grad(fused, (0, 1)))(hidden, weight),
        jax.jit(jax.value_and_grad(apart, (0, 1)))(hidden, weight),
        1e-12,
    )
    grad_hidden = jax.jit(jax.grad(fused))(hidden, weight)
    np.testing.assert_array_equal(grad_hidden[~counted], 0.0)


def test_confident_rows_keep_their_digits(x64):
    """A logit gap of 40: the loss is about e^-40 and lse - z_l must not cancel to 0."""
    hidden = np.eye(2, D)
    weight = np.zeros((D, 3))
    weight[0, 0] = 40.0
    weight[1, 2] = 40.0
    labels = np.array([0, 2])
    loss = jax.jit(jaxloss.linear_cross_entropy)(hidden.astype(np.float32), weight.astype(np.float32), labels)
    np.testing.assert_allclose(loss, np.log1p(2 * np.exp(-40.0)), rtol=1e-6)
    grad = jax.jit(jax.grad(lambda h: jnp.sum(jaxloss.linear_cross_entropy(h, weight.astype(np.float32), labels))))(
        hidden.astype(np.float32)
    )
    assert np.all(grad[:, :2] != 0.0)


def test_out_of_range_labels_give_nan():
    hidden, weight, bias, labels = _inputs(np.float32)
    labels = labels.copy()
    labels[3] = V
    loss = jaxloss.linear_cross_entropy(hidden, weight, labels, bias=bias)
    assert np.isnan(loss[3]) and np.all(np.isfinite(np.delete(np.asarray(loss), 3)))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_inputs_accumulate_in_float32(dtype):
    """Gradients in the input dtype, computed as float32 from the rounded inputs: agreement with the
    float32 computation to the input dtype's own rounding."""
    hidden, weight, bias, labels = _inputs(np.float32)
    low = [jnp.asarray(a, dtype) for a in (hidden, weight, bias)]
    value, grads = _value_and_grads(jaxloss.linear_cross_entropy, *low, labels)
    assert value.dtype == jnp.float32
    assert all(g.dtype == dtype for g in grads)
    want_value, want_grads = _value_and_grads(_unfused, *(a.astype(jnp.float32) for a in low), labels)
    np.testing.assert_allclose(value, want_value, rtol=1e-5)
    eps = float(jnp.finfo(dtype).eps)
    for g, w in zip(grads, want_grads, strict=True):
        np.testing.assert_allclose(np.asarray(g, np.float32), w, rtol=eps, atol=eps * float(np.max(np.abs(w))))


def test_vmap_checkpoint_and_leading_batch_axes():
    hidden, weight, bias, labels = _inputs(np.float32)
    batched_h = hidden.reshape(1, N, D).repeat(2, axis=0)
    batched_l = np.stack([labels, labels[::-1]])
    per_batch = jax.jit(
        jax.vmap(lambda h, ids: jaxloss.linear_cross_entropy(h, weight, ids, bias=bias, block_size=64))
    )(batched_h, batched_l)
    direct = jax.jit(lambda h, ids: jaxloss.linear_cross_entropy(h, weight, ids, bias=bias, block_size=64))(
        batched_h, batched_l
    )
    np.testing.assert_allclose(per_batch, direct, rtol=1e-6)
    np.testing.assert_allclose(direct[1], _unfused(hidden, weight, labels[::-1], bias), rtol=1e-5)

    def total(w):
        return jnp.sum(jaxloss.linear_cross_entropy(batched_h, w, batched_l, bias=bias))

    np.testing.assert_allclose(
        jax.jit(jax.grad(jax.checkpoint(total)))(weight), jax.jit(jax.grad(total))(weight), rtol=1e-6
    )


def test_the_compiled_program_holds_no_array_of_the_logits_size():
    rows, vocab = 512, 4096
    hidden = jnp.ones((rows, 64))
    weight = jnp.ones((64, vocab))
    labels = jnp.zeros((rows,), jnp.int32)

    def temp_bytes(cost):
        fn = jax.jit(jax.value_and_grad(lambda h, w: jnp.mean(cost(h, w, labels)), argnums=(0, 1)))
        return fn.lower(hidden, weight).compile().memory_analysis().temp_size_in_bytes

    fused = temp_bytes(lambda h, w, ids: jaxloss.linear_cross_entropy(h, w, ids, block_size=256))
    apart = temp_bytes(_unfused)
    assert apart >= rows * vocab * 4
    assert fused < rows * vocab * 4 / 4


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        ({"weight": np.ones((D + 1, V))}, ValueError, "weight"),
        ({"weight": np.ones((D, V), np.int32)}, TypeError, "weight"),
        ({"hidden": np.ones((N, D), np.int32)}, TypeError, "hidden"),
        ({"labels": np.ones(N)}, TypeError, "labels"),
        ({"labels": np.ones(N + 1, np.int32)}, ValueError, "labels"),
        ({"bias": np.ones(V + 1)}, ValueError, "bias"),
        ({"where": np.ones(N)}, TypeError, "where"),
        ({"block_size": 0}, ValueError, "block_size"),
        ({"block_size": 2.5}, TypeError, "block_size"),
        ({"weights": np.ones(V + 1)}, ValueError, "weights"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, error, named):
    hidden, weight, _, labels = _inputs(np.float32)
    arguments = {"hidden": hidden, "weight": weight, "labels": labels, **kwargs}
    with pytest.raises(error, match=named):
        jaxloss.linear_cross_entropy(**arguments)


# --- reduction="mean" / "sum": the gradients formed in the forward pass --------------------------


def _reduced_apart(hidden, weight, labels, bias, reduction, keep, ignore_index=None, **options):
    """The unfused reference: per-example losses, then ``jaxloss.mean`` (torch's mean) or the sum."""
    losses = _unfused(hidden, weight, labels, bias, ignore_index=ignore_index, **options)
    counted = keep if ignore_index is None else keep & (labels != ignore_index)
    if reduction == "sum":
        return jnp.sum(jnp.where(counted, losses, 0.0))
    label_weights = None if "weights" not in options else jnp.asarray(options["weights"])[labels]
    return jaxloss.mean(losses, where=counted, weights=label_weights)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "+".join(o) or "plain")
def test_reduced_equals_the_unfused_cost_in_float64(reduction, options, x64):
    """With ``where``, ``ignore_index``, a bias and rows per block that leave a remainder (7 of 37)."""
    hidden, weight, bias, labels = _inputs()
    labels = np.where(np.arange(N) % 6 == 0, 11, labels)
    keep = np.arange(N) % 5 != 0
    scale = jnp.asarray(2.5)  # a cotangent other than 1: the backward pass must scale by it

    def fused(h, w, b):
        return scale * jaxloss.linear_cross_entropy(
            h, w, labels, bias=b, where=keep, ignore_index=11, block_size=64, reduction=reduction, **options
        )

    def apart(h, w, b):
        return scale * _reduced_apart(h, w, labels, b, reduction, keep, ignore_index=11, **options)

    got = jax.jit(jax.value_and_grad(fused, (0, 1, 2)))(hidden, weight, bias)
    _assert_close(got, jax.value_and_grad(apart, (0, 1, 2))(hidden, weight, bias), 1e-12)
    np.testing.assert_allclose(jax.jit(fused)(hidden, weight, bias), got[0], rtol=1e-14)  # the primal alone


@pytest.mark.parametrize("block_size", [None, 1, 300])
def test_reduced_equals_the_unfused_cost_in_float32_for_any_block(block_size):
    hidden, weight, bias, labels = _inputs(np.float32)
    keep = np.ones(N, bool)

    def fused(h, w, b):
        return jaxloss.linear_cross_entropy(h, w, labels, bias=b, block_size=block_size, reduction="mean")

    got = jax.jit(jax.value_and_grad(fused, (0, 1, 2)))(hidden, weight, bias)
    want = jax.value_and_grad(lambda h, w, b: _reduced_apart(h, w, labels, b, "mean", keep), (0, 1, 2))(
        hidden, weight, bias
    )
    _assert_close(got, want, 1e-5)


def test_reduced_mean_of_nothing_is_zero_with_a_zero_gradient():
    hidden, weight, _, labels = _inputs(np.float32)
    keep = np.zeros(N, bool)
    value, grads = jax.jit(
        jax.value_and_grad(
            lambda h, w: jaxloss.linear_cross_entropy(h, w, labels, where=keep, reduction="mean"), (0, 1)
        )
    )(hidden, weight)
    assert float(value) == 0.0
    for g in grads:
        np.testing.assert_array_equal(g, 0.0)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_reduced_low_precision_accumulates_the_weight_gradient_in_float32(dtype):
    """Every gradient element within one rounding to ``dtype`` of the float32 computation on the
    same rounded inputs: the (D, V) accumulator is float32 and rounded once, at the end. A
    low-precision running sum over the 37 row blocks of 1 row would be off by many ulps."""
    hidden, weight, bias, labels = _inputs(np.float32)
    low = [jnp.asarray(a, dtype) for a in (hidden, weight, bias)]

    def fused(h, w, b):
        return jaxloss.linear_cross_entropy(h, w, labels, bias=b, block_size=1, reduction="sum")

    value, grads = jax.jit(jax.value_and_grad(fused, (0, 1, 2)))(*low)
    assert value.dtype == jnp.float32 and all(g.dtype == dtype for g in grads)
    keep = np.ones(N, bool)
    want_value, want_grads = jax.value_and_grad(
        lambda h, w, b: _reduced_apart(h, w, labels, b, "sum", keep), (0, 1, 2)
    )(*(a.astype(jnp.float32) for a in low))
    np.testing.assert_allclose(value, want_value, rtol=1e-5)
    eps = float(jnp.finfo(dtype).eps)
    for g, w in zip(grads, want_grads, strict=True):
        np.testing.assert_allclose(np.asarray(g, np.float32), w, rtol=eps, atol=1e-3 * eps * float(np.max(np.abs(w))))


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_token_stats_are_the_lse_and_the_arg_max_test(reduction, x64):
    """``return_stats``: the log-sum-exp of the (capped) logits and whether the label is an arg-max
    (False where the example does not count), with no gradient; the loss is unchanged."""
    hidden, weight, bias, labels = _inputs()
    labels = np.asarray(labels).copy()
    logits = np.asarray(hidden @ weight + bias)
    labels[:10] = np.argmax(logits[:10], axis=1)  # ten correct rows
    keep = np.arange(N) % 7 != 0
    options = {"soft_cap": 4.0, "z_loss": 1e-3}

    def cost(h, w, **kw):
        return jaxloss.linear_cross_entropy(h, w, labels, bias=bias, where=keep, reduction=reduction, **options, **kw)

    loss, stats = jax.jit(lambda h, w: cost(h, w, return_stats=True))(hidden, weight)
    np.testing.assert_array_equal(loss, jax.jit(cost)(hidden, weight))
    capped = 4.0 * np.tanh(logits / 4.0)
    np.testing.assert_allclose(stats.lse, jax.nn.logsumexp(capped, axis=1), rtol=1e-14)
    np.testing.assert_array_equal(stats.correct, (np.argmax(capped, axis=1) == labels) & keep)
    assert stats.correct.dtype == jnp.bool_ and 5 <= int(stats.correct.sum()) < N
    grad = jax.jit(jax.grad(lambda h: jnp.sum(cost(h, weight, return_stats=True)[1].lse)))(hidden)
    np.testing.assert_array_equal(grad, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [({"reduction": "avg"}, ValueError, "reduction"), ({"return_stats": 1}, TypeError, "return_stats")],
)
def test_bad_reduction_arguments_raise_naming_them(kwargs, error, named):
    hidden, weight, _, labels = _inputs(np.float32)
    with pytest.raises(error, match=named):
        jaxloss.linear_cross_entropy(hidden, weight, labels, **kwargs)
