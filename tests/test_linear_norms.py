"""``linear_cross_entropy``'s per-example gradient norms (``TokenStats.grad_norm``) and ``clip_norm``.

In float64, against ``jax.vmap(jax.grad(...))`` of the unfused cost (the logits stored, then
``jaxloss.reference``): every norm, and the clipped sum of the per-example gradients, with and
without bias, with options, ``ignore_index``, ``where``, a remainder block, both rules (the
vocabulary blocks per example, the blocks of rows with a reduction) and both reductions.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

N, D, V = 9, 4, 11


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    hidden = rng.normal(size=(N, D))
    weight = 0.7 * rng.normal(size=(D, V))
    bias = rng.normal(size=V)
    labels = rng.integers(0, V, N).astype(np.int32)
    return hidden, weight, bias, labels


def _per_example(hidden, weight, bias, labels, mask=None, **options):
    """Each example's loss gradient for (weight, bias), by vmap of grad of the unfused cost."""

    def loss(w, b, h, y, keep):
        logits = h[None] @ w + (0.0 if b is None else b[None])
        value = jaxloss.reference.softmax_cross_entropy_with_integer_labels(logits, y[None], **options)[0]
        return jnp.where(keep, value, 0.0)

    keep = np.ones(len(labels), bool) if mask is None else mask
    argnums = (0,) if bias is None else (0, 1)
    grads = jax.vmap(jax.grad(loss, argnums=argnums), in_axes=(None, None, 0, 0, 0))(weight, bias, hidden, labels, keep)
    squares = sum(jnp.sum(g.reshape(len(labels), -1) ** 2, axis=1) for g in grads)
    return grads, jnp.sqrt(squares)


CASES = {
    "plain": {},
    "options": {"label_smoothing": 0.1, "z_loss": 1e-3, "soft_cap": 5.0, "weights": np.linspace(0.5, 2.0, V)},
    "ignore_index": {"ignore_index": 3},
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_grad_norms_equal_vmap_of_grad_in_float64(case, with_bias, reduction, x64):
    hidden, weight, bias, labels = _inputs()
    options = dict(CASES[case])
    if case == "ignore_index":
        labels[[1, 5]] = 3
    b = bias if with_bias else None
    # block_size 4: a remainder block of 3 classes (and, with a reduction, blocks of rows)
    _, stats = jaxloss.linear_cross_entropy(
        hidden, weight, labels, bias=b, block_size=4, reduction=reduction, return_stats=True, **options
    )
    keep = labels != options.get("ignore_index", -1)
    ref_options = {k: v for k, v in options.items() if k != "ignore_index"}
    _, want = _per_example(hidden, weight, b, labels, keep, **ref_options)
    np.testing.assert_allclose(stats.grad_norm, want, rtol=1e-12, atol=1e-300)
    assert np.all(np.asarray(stats.grad_norm)[~keep] == 0.0)


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("rule", ["rows", "vocabulary"])
def test_clipped_gradient_is_the_sum_of_clipped_per_example_gradients(with_bias, reduction, rule, x64, monkeypatch):
    """Both rules: blocks of rows (the CPU's plan with a reduction) and blocks of the vocabulary
    with a reduction after them (an accelerator's plan, forced here: 3 blocks, a remainder)."""
    from jaxloss import _linear, _plan

    if rule == "vocabulary":
        monkeypatch.setattr(_linear, "plan_blocks", lambda rows, *a, **k: _plan.BlockPlan("vocabulary", 4, rows))
    block_size = 4 if rule == "rows" else None
    hidden, weight, bias, labels = _inputs(1)
    b = bias if with_bias else None
    where = np.arange(N) != 2
    grads, norms = _per_example(hidden, weight, b, labels, where)
    clip = float(np.median(norms[where]))  # about half the examples clipped
    factors = np.minimum(1.0, clip / np.where(norms > 0, norms, 1.0))
    count = float(where.sum()) if reduction == "mean" else 1.0
    want = [np.tensordot(factors, g, axes=1) / count for g in grads]

    def cost(w, bb):
        return jaxloss.linear_cross_entropy(
            hidden, w, labels, bias=bb, where=where, block_size=block_size, reduction=reduction, clip_norm=clip
        )

    got = jax.grad(cost, argnums=(0,) if b is None else (0, 1))(weight, b)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
    # the loss is the clipped sum, over the same denominator
    losses = jaxloss.linear_cross_entropy(hidden, weight, labels, bias=b, where=where)
    np.testing.assert_allclose(cost(weight, b), np.sum(factors * losses) / count, rtol=1e-13)


def test_clip_norm_needs_a_reduction_and_a_positive_value():
    hidden, weight, _, labels = _inputs()
    with pytest.raises(ValueError, match="clip_norm"):
        jaxloss.linear_cross_entropy(hidden, weight, labels, clip_norm=1.0)
    with pytest.raises(ValueError, match="clip_norm"):
        jaxloss.linear_cross_entropy(hidden, weight, labels, reduction="sum", clip_norm=0.0)
    with pytest.raises(ValueError, match="clip_norm"):
        jaxloss.linear_cross_entropy(hidden, weight, labels, reduction="sum", clip_norm=np.ones(2))
    with pytest.raises((TypeError, ValueError), match="clip_norm"):
        jaxloss.linear_cross_entropy(hidden, weight, labels, reduction="sum", clip_norm=1j)
    # traced: a non-positive value cannot raise, and makes the loss NaN
    traced = jax.jit(lambda c: jaxloss.linear_cross_entropy(hidden, weight, labels, reduction="sum", clip_norm=c))
    assert np.isnan(traced(-1.0)) and np.isfinite(traced(1.0))


def test_norms_of_confident_rows_keep_their_digits():
    """A row with 1 - p_l near 1e-30: its seed's squares underflow float32, its norm does not."""
    hidden = np.eye(2, 3, dtype=np.float32) * 70.0
    weight = np.eye(3, 5, dtype=np.float32)
    labels = np.array([0, 1], np.int32)
    _, stats = jaxloss.linear_cross_entropy(hidden, weight, labels, return_stats=True)
    # logits [70, 0, 0, 0, 0]: g = p - e_0 with p_j = e^-70 / S, R/S = 4 e^-70 / S; ||g|| = e^-70 sqrt(20)
    want = np.exp(-70.0) * np.sqrt(20.0) / (1 + 4 * np.exp(-70.0)) * 70.0
    np.testing.assert_allclose(stats.grad_norm, [want, want], rtol=1e-6)


@pytest.mark.parametrize("length", [1, 2048], ids=["tokens", "sequences of 2048"])
def test_llama3_head_with_norms_compiled_for_an_h200_stays_within_the_memory_target(length):
    """Compiled here for an H200: Llama 3's head (N=8192, D=4096, V=128256, bfloat16), value_and_grad
    of the mean with the per-example norms as an auxiliary output, holds at most 4 GiB of
    temporaries (the plain step's target; 3.55 GiB without the norms, 3.92 with them, per token
    or per sequence of 2048 tokens, jax 0.10.2), one more loop over the vocabulary's 2 blocks and
    no logits-sized array (4 GiB in float32)."""
    from jaxloss.tools import accelerators

    reason = accelerators.missing("h200")
    if reason:
        pytest.skip(reason)
    h = jax.ShapeDtypeStruct((8192 // length, length, 4096), jnp.bfloat16)
    w = jax.ShapeDtypeStruct((4096, 128256), jnp.bfloat16)
    y = jax.ShapeDtypeStruct((8192 // length, length), jnp.int32)
    ids = None if length == 1 else jnp.zeros((8192 // length, length), jnp.int32)

    def step(h, w, y):
        def loss(h, w):
            value, stats = jaxloss.linear_cross_entropy(h, w, y, reduction="mean", return_stats=True, segment_ids=ids)
            return value, stats.grad_norm

        return jax.value_and_grad(loss, (0, 1), has_aux=True)(h, w)

    footprint = accelerators.footprint(accelerators.compile_for(step, h, w, y, target="h200"))
    assert footprint.trip_counts == (2, 2)
    assert footprint.temp_bytes <= 4 * 2**30


# --- segment_ids: a sequence's tokens as one example ---------------------------------------------

B, T = 3, 6
# unequal lengths, ids repeated in other sequences (different examples there), one not contiguous
SEGMENTS = np.array([[0, 0, 1, 1, 1, 2], [5, 5, 5, 5, 5, 5], [1, 2, 1, 2, 3, 3]])


def _segment_reference(hidden, weight, bias, labels, segments, keep, **options):
    """Each example's gradient for (weight, bias): grad of the sum of its tokens' unfused losses.

    Returns the gradients (examples first) and each token's example norm (0 where it does not count)."""
    examples = [(s, i) for s in range(segments.shape[0]) for i in np.unique(segments[s])]

    def loss(w, b, s, i):
        logits = hidden[s] @ w + (0.0 if b is None else b[None])
        values = jaxloss.reference.softmax_cross_entropy_with_integer_labels(logits, labels[s], **options)
        return jnp.sum(jnp.where((segments[s] == i) & keep[s], values, 0.0))

    argnums = (0,) if bias is None else (0, 1)
    grads = [jax.grad(loss, argnums=argnums)(weight, bias, s, i) for s, i in examples]
    norms = np.zeros(segments.shape)
    for (s, i), g in zip(examples, grads, strict=True):
        norms[s][(segments[s] == i) & keep[s]] = np.sqrt(sum(np.sum(np.asarray(x) ** 2) for x in g))
    return examples, grads, norms


def _segment_inputs(seed=2):
    rng = np.random.default_rng(seed)
    hidden = rng.normal(size=(B, T, D))
    labels = rng.integers(0, V, (B, T)).astype(np.int32)
    weight = 0.7 * rng.normal(size=(D, V))
    return hidden, weight, rng.normal(size=V), labels


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("rule", ["vocabulary", "rows", "vocabulary, reduced"])
def test_segment_norms_equal_the_gradient_of_each_segments_summed_loss_in_float64(
    case, with_bias, rule, x64, monkeypatch
):
    """Segments of 1 to 6 tokens, one not contiguous, with and without bias, options, where and
    ignore_index; blocks of 4 classes (a remainder of 3), blocks of whole sequences of rows, and
    the vocabulary rule under a reduction (an accelerator's plan, forced)."""
    from jaxloss import _linear, _plan

    if rule == "vocabulary, reduced":
        monkeypatch.setattr(_linear, "plan_blocks", lambda rows, *a, **k: _plan.BlockPlan("vocabulary", 4, rows))
    hidden, weight, bias, labels = _segment_inputs()
    options = dict(CASES[case])
    keep = np.ones((B, T), bool)
    keep[0, 3] = False  # `where`, or ignore_index
    where = None
    if case == "ignore_index":
        labels[0, 3] = 3
        labels[labels == 3] = 4
        labels[0, 3] = 3
    else:
        where = keep
    b = bias if with_bias else None
    reduction = "none" if rule == "vocabulary" else "sum"
    _, stats = jaxloss.linear_cross_entropy(
        hidden,
        weight,
        labels,
        bias=b,
        where=where,
        block_size=4 if rule != "rows" else 6,
        reduction=reduction,
        return_stats=True,
        segment_ids=SEGMENTS,
        **options,
    )
    ref_options = {k: v for k, v in options.items() if k != "ignore_index"}
    _, _, want = _segment_reference(hidden, weight, b, labels, SEGMENTS, keep, **ref_options)
    np.testing.assert_allclose(stats.grad_norm, want, rtol=1e-12, atol=1e-300)
    assert np.all(np.asarray(stats.grad_norm)[~keep] == 0.0)
    # a one-token segment's norm is its token's norm
    _, tokens = jaxloss.linear_cross_entropy(hidden, weight, labels, bias=b, where=where, return_stats=True, **options)
    np.testing.assert_allclose(stats.grad_norm[0, 5], tokens.grad_norm[0, 5], rtol=1e-13)


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("rule", ["rows", "vocabulary"])
def test_segment_clipping_sums_each_segments_clipped_gradient(with_bias, rule, x64, monkeypatch):
    from jaxloss import _linear, _plan

    if rule == "vocabulary":
        monkeypatch.setattr(_linear, "plan_blocks", lambda rows, *a, **k: _plan.BlockPlan("vocabulary", 4, rows))
    hidden, weight, bias, labels = _segment_inputs(3)
    b = bias if with_bias else None
    keep = np.ones((B, T), bool)
    examples, grads, norms = _segment_reference(hidden, weight, b, labels, SEGMENTS, keep)
    example_norms = np.array([norms[s][SEGMENTS[s] == i][0] for s, i in examples])
    clip = float(np.median(example_norms))
    assert 0 < np.sum(example_norms > clip) < len(examples)  # some clipped, some not
    factors = np.minimum(1.0, clip / example_norms)
    want = [
        sum(f * np.asarray(g[k]) for f, g in zip(factors, grads, strict=True)) / (B * T) for k in range(len(grads[0]))
    ]

    def cost(w, bb):
        return jaxloss.linear_cross_entropy(
            hidden, w, labels, bias=bb, block_size=6, reduction="mean", clip_norm=clip, segment_ids=SEGMENTS
        )

    got = jax.grad(cost, argnums=(0,) if b is None else (0, 1))(weight, b)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_segment_norms_of_confident_tokens_keep_their_digits():
    """Two confident tokens (1 - p_l near 1e-30) in one segment, float32: no product underflows."""
    hidden = np.stack([np.eye(2, 3, dtype=np.float32) * 70.0])  # (1, 2, 3)
    weight = np.eye(3, 5, dtype=np.float32)
    labels = np.array([[0, 1]], np.int32)
    _, stats = jaxloss.linear_cross_entropy(hidden, weight, labels, return_stats=True, segment_ids=[[7, 7]])
    # each token's gradient h_t g_t^T has norm 70 e^-70 sqrt(20) / (1 + 4 e^-70), and h_0 . h_1 = 0
    one = np.exp(-70.0) * np.sqrt(20.0) / (1 + 4 * np.exp(-70.0)) * 70.0
    np.testing.assert_allclose(stats.grad_norm, [[np.sqrt(2.0) * one] * 2], rtol=1e-6)
    assert stats.grad_norm.dtype == np.float32


def test_segment_ids_errors_and_wide_ids():
    hidden, weight, _, labels = _segment_inputs()
    with pytest.raises(ValueError, match=r"segment_ids.*return_stats"):
        jaxloss.linear_cross_entropy(hidden, weight, labels, segment_ids=SEGMENTS)
    with pytest.raises(ValueError, match=r"segment_ids.*\(2, 6\).*\(3, 6\)"):
        jaxloss.linear_cross_entropy(hidden, weight, labels, return_stats=True, segment_ids=SEGMENTS[:2])
    with pytest.raises(TypeError, match="segment_ids"):
        jaxloss.linear_cross_entropy(hidden, weight, labels, return_stats=True, segment_ids=SEGMENTS * 1.0)
    # 64-bit ids beyond int32, without x64: still two examples, never wrapped into one
    wide = np.where(SEGMENTS == 5, 2**40, 2**40 + 2**32).astype(np.int64)
    narrow = np.where(SEGMENTS == 5, 0, 1)
    _, a = jaxloss.linear_cross_entropy(hidden, weight, labels, return_stats=True, segment_ids=wide)
    _, b = jaxloss.linear_cross_entropy(hidden, weight, labels, return_stats=True, segment_ids=narrow)
    np.testing.assert_array_equal(a.grad_norm, b.grad_norm)
