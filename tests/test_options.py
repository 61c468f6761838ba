"""The training options (label smoothing, weights, pos_weight, ignore_index, z-loss, soft-capping)
and ``jaxloss.mean``.

* hypothesis draws options and inputs in float64; jaxloss and jaxloss.forward must equal the
  values of jaxloss.reference and the gradients ``jax.grad`` takes of it;
* fixed examples, with the expected numbers worked out in mpmath from torch's (and Keras's,
  Gemma 2's, PaLM's) definitions and written in, pin the meaning of each option;
* the public seeds with options equal the rules' gradients; bad options raise, naming them.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxloss
from jaxloss import seeds

RULES = {"jaxloss": jaxloss, "jaxloss.forward": jaxloss.forward}
LOGITS = np.array([[1.5, -0.5, 0.25], [-2.0, 3.0, 0.5]])
INTEGER_LABELS = np.array([0, 2])
CLASS_WEIGHTS = np.array([0.2, 1.0, 3.0])


# --- hypothesis: the closed-form rules against autodiff of the reference, float64 -------------


def _grads(cost, x, y, options, argnums):
    def total(x, y):
        return jnp.sum(cost(x, y, **options))

    return jax.jit(jax.value_and_grad(total, argnums=argnums))(x, y)


def _grads_of_both(rule, ref, x, y, options, argnums):
    """(value, grads) of ``rule`` and of ``ref``, from one compiled program (half the compile time)."""

    def both(x, y):
        return [
            jax.value_and_grad(lambda a, b, f=f: jnp.sum(f(a, b, **options)), argnums=argnums)(x, y)
            for f in (rule, ref)
        ]

    return jax.jit(both)(x, y)


def _assert_same(got, want):
    value, grads = got
    want_value, want_grads = want
    np.testing.assert_allclose(value, want_value, rtol=1e-10)
    for g, w in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads), strict=True):
        assert np.all(np.isfinite(w))
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12 * max(1.0, float(np.max(np.abs(w)))))


def _drawn(draw, shape, scale):
    return np.asarray(
        draw(st.lists(st.floats(-scale, scale), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    )


@st.composite
def softmax_cases(draw):
    rows, classes = draw(st.integers(1, 4)), draw(st.integers(2, 6))
    x = _drawn(draw, (rows, classes), 8.0).reshape(rows, classes)
    integer = draw(st.booleans())
    if integer:
        y = np.asarray(draw(st.lists(st.integers(0, classes - 1), min_size=rows, max_size=rows)))
    else:
        y = np.abs(_drawn(draw, (rows, classes), 1.0).reshape(rows, classes))
    options = {}
    if draw(st.booleans()):
        options["label_smoothing"] = draw(st.floats(0.0, 1.0))
    if draw(st.booleans()):
        options["weights"] = np.abs(_drawn(draw, (classes,), 3.0)) + 0.1
    if draw(st.booleans()):
        options["z_loss"] = draw(st.floats(0.0, 0.1))
    if draw(st.booleans()):
        options["soft_cap"] = draw(st.floats(0.5, 30.0))
    if integer and draw(st.booleans()):
        options["ignore_index"] = int(y[0])
    return x, y, integer, options


@st.composite
def sigmoid_cases(draw):
    rows, labels = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    x = _drawn(draw, (rows, labels), 8.0).reshape(rows, labels)
    y = np.clip(np.abs(_drawn(draw, (rows, labels), 1.0).reshape(rows, labels)), 0.0, 1.0)
    options = {}
    if draw(st.booleans()):
        options["label_smoothing"] = draw(st.floats(0.0, 1.0))
    if draw(st.booleans()):
        options["weights"] = np.abs(_drawn(draw, (labels,), 3.0))
    if draw(st.booleans()):
        options["pos_weight"] = np.abs(_drawn(draw, (labels,), 5.0))
    if draw(st.booleans()):
        options["soft_cap"] = draw(st.floats(0.5, 30.0))
    return x, y, options


@pytest.mark.parametrize("namespace", list(RULES))
@settings(max_examples=10, deadline=None)
@given(case=softmax_cases())
def test_softmax_options_equal_autodiff_of_the_reference(namespace, case):
    x, y, integer, options = case
    name = "softmax_cross_entropy_with_integer_labels" if integer else "softmax_cross_entropy"
    argnums = 0 if integer else (0, 1)
    with jax.enable_x64(True):
        got, want = _grads_of_both(
            getattr(RULES[namespace], name), getattr(jaxloss.reference, name), x, y, options, argnums
        )
    _assert_same(got, want)


@pytest.mark.parametrize("name", ["sigmoid_binary_cross_entropy", "sigmoid_multilabel_cross_entropy"])
@pytest.mark.parametrize("namespace", list(RULES))
@settings(max_examples=10, deadline=None)
@given(case=sigmoid_cases())
def test_sigmoid_options_equal_autodiff_of_the_reference(name, namespace, case):
    x, y, options = case
    with jax.enable_x64(True):
        got, want = _grads_of_both(
            getattr(RULES[namespace], name), getattr(jaxloss.reference, name), x, y, options, (0, 1)
        )
    _assert_same(got, want)


# --- fixed examples: torch's, Keras's, PaLM's and Gemma 2's definitions ------------------------


@pytest.mark.parametrize("namespace", ["jaxloss", "jaxloss.forward", "jaxloss.reference"])
def test_integer_labels_with_class_weights_and_smoothing_match_torch(namespace, x64):
    """torch: (1 - ε) w_l (-log p_l) + (ε/C) Σ_j w_j (-log p_j), reduction="none"."""
    ns = {"jaxloss": jaxloss, "jaxloss.forward": jaxloss.forward, "jaxloss.reference": jaxloss.reference}[namespace]
    loss = ns.softmax_cross_entropy_with_integer_labels(
        LOGITS, INTEGER_LABELS, weights=CLASS_WEIGHTS, label_smoothing=0.1
    )
    np.testing.assert_allclose(loss, [0.30429126308356321, 7.2750095130079745], rtol=1e-14)


def test_mean_with_class_weights_matches_torch_reduction_mean(x64):
    """torch's weighted mean divides by Σ_i w_{l_i}."""
    loss = jaxloss.softmax_cross_entropy_with_integer_labels(
        LOGITS, INTEGER_LABELS, weights=CLASS_WEIGHTS, label_smoothing=0.1
    )
    mean = jaxloss.mean(loss, weights=CLASS_WEIGHTS[INTEGER_LABELS])
    np.testing.assert_allclose(mean, 2.3685314925286054, rtol=1e-14)


def test_soft_labels_with_class_weights_and_smoothing_match_torch(x64):
    """torch with probability targets: -Σ_j w_j y'_j log p_j, y' = (1 - ε) y + ε/C."""
    labels = np.array([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]])
    loss = jaxloss.softmax_cross_entropy(LOGITS, labels, weights=CLASS_WEIGHTS, label_smoothing=0.1)
    np.testing.assert_allclose(loss, [1.1411642011494728, 3.8234219912800948], rtol=1e-14)


def test_z_loss_and_soft_cap_match_their_definitions(x64):
    """PaLM's z-loss α lse(z)², on Gemma 2's capped logits c tanh(z/c)."""
    loss = jaxloss.softmax_cross_entropy_with_integer_labels(LOGITS, INTEGER_LABELS, z_loss=1e-3, soft_cap=2.0)
    np.testing.assert_allclose(loss, [0.4294815857385074, 1.5891882953237404], rtol=1e-14)


def test_pos_weight_and_weights_match_torch_bce_with_logits(x64):
    """torch: -w [p y log σ(z) + (1 - y) log(1 - σ(z))]."""
    z = np.array([2.0, -1.0, 0.5, -3.0])
    y = np.array([1.0, 0.0, 0.3, 1.0])
    loss = jaxloss.sigmoid_binary_cross_entropy(
        z, y, pos_weight=np.array([3.0, 3.0, 0.5, 2.0]), weights=np.array([1.0, 0.5, 2.0, 1.0])
    )
    want = [0.38078403312891749, 0.15663084375911142, 1.5059308731061814, 6.0971747031474841]
    np.testing.assert_allclose(loss, want, rtol=1e-14)


def test_sigmoid_label_smoothing_matches_keras(x64):
    """Keras: y' = y (1 - ε) + ε/2."""
    z = np.array([2.0, -1.0, 0.5, -3.0])
    y = np.array([1.0, 0.0, 0.3, 1.0])
    loss = jaxloss.sigmoid_binary_cross_entropy(z, y, label_smoothing=0.2)
    want = [0.3269280110429725, 0.41326168751822283, 0.80407698418010669, 2.7485873515737421]
    np.testing.assert_allclose(loss, want, rtol=1e-14)


@pytest.mark.parametrize("namespace", list(RULES))
def test_ignore_index_costs_zero_with_a_zero_gradient_even_out_of_range(namespace):
    cost = RULES[namespace].softmax_cross_entropy_with_integer_labels
    labels = np.array([0, -100])
    for options in ({}, {"label_smoothing": 0.1, "z_loss": 1e-3}):
        loss, grad = jax.value_and_grad(lambda z, o=options: jnp.sum(cost(z, labels, ignore_index=-100, **o)))(LOGITS)
        single = cost(LOGITS[:1], labels[:1], **options)
        np.testing.assert_allclose(loss, single[0], rtol=1e-6)
        np.testing.assert_array_equal(grad[1], 0.0)
        assert np.all(grad[0] != 0.0)


def test_options_are_off_by_default_and_zero_options_take_the_plain_path():
    plain = jaxloss.softmax_cross_entropy_with_integer_labels(LOGITS, INTEGER_LABELS)
    spelled_out = jaxloss.softmax_cross_entropy_with_integer_labels(
        LOGITS, INTEGER_LABELS, label_smoothing=0.0, z_loss=0.0, weights=np.ones(3), soft_cap=1e30
    )
    np.testing.assert_allclose(spelled_out, plain, rtol=1e-6)


def test_smoothing_skips_masked_classes():
    """ε/C goes to the classes in play only: a -inf logit would make the loss infinite."""
    logits = np.array([[2.0, -np.inf, 0.5]])
    loss = jaxloss.softmax_cross_entropy_with_integer_labels(logits, np.array([0]), label_smoothing=0.3)
    kept = jaxloss.softmax_cross_entropy_with_integer_labels(logits[:, [0, 2]], np.array([0]), label_smoothing=0.3)
    np.testing.assert_allclose(loss, kept, rtol=1e-6)


# --- extremes, low precision, transformations --------------------------------------------------


@pytest.mark.parametrize("scale", [1e4, 3e38])
def test_options_stay_finite_on_extreme_logits(scale):
    logits = np.array([[scale, -scale, 0.0], [-scale, 0.0, scale]], np.float32)
    options = {"label_smoothing": 0.1, "weights": CLASS_WEIGHTS.astype(np.float32), "soft_cap": 30.0}
    loss, grad = jax.value_and_grad(
        lambda z: jnp.sum(jaxloss.softmax_cross_entropy_with_integer_labels(z, INTEGER_LABELS, **options))
    )(logits)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    loss, grad = jax.value_and_grad(
        lambda z: jnp.sum(
            jaxloss.sigmoid_binary_cross_entropy(z, jnp.ones_like(z), pos_weight=0.5, label_smoothing=0.1)
        )
    )(logits)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_inputs_compute_in_float32(dtype):
    logits = jnp.asarray(LOGITS, dtype)
    loss, grad = jax.value_and_grad(
        lambda z: jnp.sum(
            jaxloss.softmax_cross_entropy_with_integer_labels(z, INTEGER_LABELS, label_smoothing=0.1, z_loss=1e-3)
        )
    )(logits)
    assert loss.dtype == jnp.float32 and grad.dtype == dtype
    want = jaxloss.softmax_cross_entropy_with_integer_labels(
        logits.astype(jnp.float32), INTEGER_LABELS, label_smoothing=0.1, z_loss=1e-3
    )
    np.testing.assert_allclose(loss, jnp.sum(want), rtol=1e-6)


def test_traced_options_under_jit_and_vmap():
    def cost(z, eps, cap):
        return jaxloss.softmax_cross_entropy_with_integer_labels(z, INTEGER_LABELS, label_smoothing=eps, soft_cap=cap)

    traced = jax.jit(cost)(LOGITS, 0.1, 5.0)
    np.testing.assert_allclose(traced, cost(LOGITS, 0.1, 5.0), rtol=1e-6)
    per_eps = jax.vmap(cost, in_axes=(None, 0, None))(LOGITS, jnp.array([0.0, 0.1]), 5.0)
    np.testing.assert_allclose(per_eps[1], traced, rtol=1e-6)


# --- the public seeds with options -------------------------------------------------------------


def test_public_seeds_with_options_equal_the_rules(x64):
    soft = np.array([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]])
    softmax_options = {"label_smoothing": 0.1, "weights": CLASS_WEIGHTS, "z_loss": 1e-2, "soft_cap": 4.0}
    want = jax.grad(lambda z: jnp.sum(jaxloss.softmax_cross_entropy(z, soft, **softmax_options)))(LOGITS)
    np.testing.assert_allclose(seeds.softmax_cross_entropy_grad(LOGITS, soft, **softmax_options), want, rtol=1e-12)
    want = jax.grad(
        lambda z: jnp.sum(
            jaxloss.softmax_cross_entropy_with_integer_labels(z, np.array([1, -1]), ignore_index=-1, **softmax_options)
        )
    )(LOGITS)
    got = seeds.softmax_cross_entropy_with_integer_labels_grad(
        LOGITS, np.array([1, -1]), ignore_index=-1, **softmax_options
    )
    np.testing.assert_allclose(got, want, rtol=1e-12)
    sigmoid_options = {"label_smoothing": 0.2, "weights": 2.0, "pos_weight": 3.0, "soft_cap": 4.0}
    y = np.array([[1.0, 0.0, 0.4], [0.0, 1.0, 1.0]])
    want = jax.grad(lambda z: jnp.sum(jaxloss.sigmoid_binary_cross_entropy(z, y, **sigmoid_options)))(LOGITS)
    np.testing.assert_allclose(seeds.sigmoid_binary_cross_entropy_grad(LOGITS, y, **sigmoid_options), want, rtol=1e-12)


def test_option_seeds_are_their_formulas(x64):
    np.testing.assert_allclose(seeds.soft_cap_grad(LOGITS, 2.0), 1.0 - np.tanh(LOGITS / 2.0) ** 2, rtol=1e-14)
    lse = np.log(np.sum(np.exp(LOGITS), -1, keepdims=True))
    np.testing.assert_allclose(seeds.z_loss_grad(LOGITS, 0.01), 2 * 0.01 * lse * np.exp(LOGITS - lse), rtol=1e-13)


# --- bad options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"label_smoothing": 1.5}, ValueError, "label_smoothing"),
        ({"label_smoothing": -0.1}, ValueError, "label_smoothing"),
        ({"label_smoothing": np.ones(2)}, ValueError, "label_smoothing"),
        ({"z_loss": -1.0}, ValueError, "z_loss"),
        ({"soft_cap": 0.0}, ValueError, "soft_cap"),
        ({"soft_cap": -2.0}, ValueError, "soft_cap"),
        ({"weights": np.ones(4)}, ValueError, "weights"),
        ({"weights": np.ones((2, 3))}, ValueError, "weights"),
        ({"weights": "heavy"}, TypeError, "weights"),
        ({"ignore_index": 1.0}, TypeError, "ignore_index"),
        ({"ignore_index": np.array(1)}, TypeError, "ignore_index"),
    ],
)
def test_bad_softmax_options_raise_naming_them(options, error, named):
    with pytest.raises(error, match=named):
        jaxloss.softmax_cross_entropy_with_integer_labels(LOGITS, INTEGER_LABELS, **options)


@pytest.mark.parametrize(
    ("options", "named"),
    [({"pos_weight": np.ones(4)}, "pos_weight"), ({"weights": np.ones((3, 3))}, "weights")],
)
def test_bad_sigmoid_options_raise_naming_them(options, named):
    with pytest.raises(ValueError, match=named):
        jaxloss.sigmoid_binary_cross_entropy(LOGITS, np.zeros_like(LOGITS), **options)


# --- jaxloss.mean ------------------------------------------------------------------------------


def test_mean_of_nothing_kept_is_zero_with_a_zero_gradient_and_no_nan():
    losses = jnp.array([1.0, jnp.nan])
    where = jnp.array([False, False])
    value, grad = jax.value_and_grad(lambda v: jaxloss.mean(v, where=where))(losses)
    assert value == 0.0
    np.testing.assert_array_equal(grad, 0.0)
    value, grad = jax.value_and_grad(lambda v: jaxloss.mean(v, where=jnp.array([True, False])))(losses)
    assert value == 1.0
    np.testing.assert_array_equal(grad, [1.0, 0.0])


def test_mean_divides_by_the_kept_weight():
    losses = jnp.array([1.0, 2.0, 4.0])
    got = jaxloss.mean(losses, where=jnp.array([True, False, True]), weights=jnp.array([1.0, 5.0, 3.0]))
    np.testing.assert_allclose(got, (1.0 + 4.0) / (1.0 + 3.0))
    np.testing.assert_allclose(jaxloss.mean(losses), 7.0 / 3.0, rtol=1e-6)


def test_mean_rejects_bad_arguments():
    with pytest.raises(TypeError, match="losses"):
        jaxloss.mean(jnp.array([1, 2]))
    with pytest.raises(TypeError, match="where"):
        jaxloss.mean(jnp.ones(2), where=jnp.ones(2))
    with pytest.raises(ValueError, match="weights"):
        jaxloss.mean(jnp.ones(2), weights=jnp.ones(3))


def test_soft_capped_ties_under_jit_match_the_reference(x64):
    """Found by hypothesis: with the cap computed inside the rule, XLA fused ``c * tanh(z/c)`` into
    each pass and contracted ``c * t - max`` into a multiply-add, so the arg-max's gap was not 0
    in one pass and the tie count lost it. Ties are now read from one expression everywhere."""
    x, y = np.array([[0.0, 0.0, 1.0]]), np.zeros((1, 3))
    for ns in (jaxloss, jaxloss.forward):
        got = _grads(ns.softmax_cross_entropy, x, y, {"soft_cap": 15.0}, (0, 1))
        want = _grads(jaxloss.reference.softmax_cross_entropy, x, y, {"soft_cap": 15.0}, (0, 1))
        _assert_same(got, want)


OPTION_COSTS = {
    "softmax_cross_entropy_with_integer_labels": lambda **o: jaxloss.softmax_cross_entropy_with_integer_labels(
        LOGITS, INTEGER_LABELS, **o
    ),
    "softmax_cross_entropy": lambda **o: jaxloss.softmax_cross_entropy(
        LOGITS, jax.nn.one_hot(INTEGER_LABELS, LOGITS.shape[-1]), **o
    ),
    "sigmoid_binary_cross_entropy": lambda **o: jaxloss.sigmoid_binary_cross_entropy(
        LOGITS, np.zeros_like(LOGITS), **o
    ),
}
OUT_OF_RANGE = [
    ("label_smoothing", 2.0),
    ("label_smoothing", -0.5),
    ("label_smoothing", np.nan),
    ("z_loss", -1.0),
    ("z_loss", np.inf),
    ("soft_cap", 0.0),
    ("soft_cap", -3.0),
    ("soft_cap", np.inf),
]


# The sigmoid costs have no z_loss.
OPTION_CASES = [
    (cost, name, value)
    for cost in OPTION_COSTS
    for name, value in OUT_OF_RANGE
    if not (cost == "sigmoid_binary_cross_entropy" and name == "z_loss")
]


@pytest.mark.parametrize(("cost", "name", "value"), OPTION_CASES)
def test_concrete_options_out_of_range_raise_as_python_numbers_do(cost, name, value):
    for concrete in (value, np.float32(value), jnp.asarray(value, jnp.float32)):
        with pytest.raises(ValueError, match=rf"`{name}` must lie in"):
            OPTION_COSTS[cost](**{name: concrete})


@pytest.mark.parametrize(("cost", "name", "value"), OPTION_CASES)
def test_traced_options_out_of_range_give_nan_and_in_range_equal_concrete(cost, name, value):
    traced = jax.jit(lambda v: OPTION_COSTS[cost](**{name: v}))
    assert np.all(np.isnan(np.asarray(traced(jnp.float32(value)))))
    fine = {"label_smoothing": 0.25, "z_loss": 0.01, "soft_cap": 2.0}[name]
    got = np.asarray(traced(jnp.float32(fine)))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, np.asarray(OPTION_COSTS[cost](**{name: fine})), rtol=1e-6)
