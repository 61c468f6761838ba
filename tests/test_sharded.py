"""Vocabulary-parallel costs on eight host devices (``conftest`` asks for them).

A (2, 4) mesh: axis "b" splits the batch (data parallel), axis "v" the vocabulary. The sharded
costs must equal the single-device ones in value and gradient, and the compiled programs must
move O(N) numbers per step for the logits, never an array of the logits' size.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss
from jaxloss import sharded
from jaxloss.tools import hlo

N, D, V = 32, 8, 64  # 16 rows and 16 classes per device


def _mesh(explicit=True):
    """A 2 x 4 mesh of the host's CPU devices, whatever the default backend."""
    kind = AxisType.Explicit if explicit else AxisType.Auto
    return jax.make_mesh((2, 4), ("b", "v"), axis_types=(kind, kind), devices=jax.devices("cpu")[:8])


def _put(mesh, array, spec):
    return jax.device_put(jnp.asarray(array), NamedSharding(mesh, spec))


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    logits = (3.0 * rng.normal(size=(N, V))).astype(np.float32)
    labels = rng.integers(0, V, N).astype(np.int32)
    logits[1, labels[1]] = 60.0  # a confident row: lse - z_l must not cancel
    hidden = rng.normal(size=(N, D)).astype(np.float32)
    weight = rng.normal(size=(D, V)).astype(np.float32)
    keep = np.arange(N) % 5 != 0
    return logits, labels, hidden, weight, keep


COTANGENT = np.sin(np.arange(N)).astype(np.float32)  # each loss its own cotangent


def _collectives(compiled_text):
    """(op, element count) of every collective in an optimised HLO module."""
    return [(op, elements) for op, elements, _ in hlo.collectives(compiled_text)]


def _sharded_integer(mesh):
    def cost(logits, labels, keep):
        return sharded.softmax_cross_entropy_with_integer_labels(logits, labels, axis_name="v", where=keep)

    return jax.jit(jax.shard_map(cost, mesh=mesh, in_specs=(P("b", "v"), P("b"), P("b")), out_specs=P("b")))


def _sharded_linear(mesh):
    def cost(hidden, weight, labels, keep):
        return sharded.linear_cross_entropy(hidden, weight, labels, axis_name="v", where=keep, block_size=5)

    return jax.jit(
        jax.shard_map(cost, mesh=mesh, in_specs=(P("b", None), P(None, "v"), P("b"), P("b")), out_specs=P("b"))
    )


def test_sharded_integer_cost_equals_one_device():
    mesh = _mesh()
    logits, labels, _, _, keep = _inputs()
    cost = _sharded_integer(mesh)
    args = (_put(mesh, logits, P("b", "v")), _put(mesh, labels, P("b")), _put(mesh, keep, P("b")))
    cot = _put(mesh, COTANGENT, P("b"))
    value, grad = jax.jit(jax.value_and_grad(lambda z, y, k: jnp.sum(cot * cost(z, y, k))))(*args)

    def single(z):
        return jnp.sum(COTANGENT * jnp.where(keep, jaxloss.softmax_cross_entropy_with_integer_labels(z, labels), 0.0))

    want_value, want_grad = jax.value_and_grad(single)(logits)
    np.testing.assert_allclose(value, want_value, rtol=1e-5)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-6)
    losses = np.asarray(jax.jit(cost)(*args))
    assert 0 < float(losses[1]) < 1e-20  # the confident row keeps its digits (e^-60-ish, not 0)


def test_sharded_linear_cost_equals_one_device():
    mesh = _mesh()
    _, labels, hidden, weight, keep = _inputs()
    cost = _sharded_linear(mesh)
    args = (_put(mesh, hidden, P("b", None)), _put(mesh, weight, P(None, "v")))
    rest = (_put(mesh, labels, P("b")), _put(mesh, keep, P("b")))
    cot = _put(mesh, COTANGENT, P("b"))
    value, grads = jax.jit(jax.value_and_grad(lambda h, w: jnp.sum(cot * cost(h, w, *rest)), argnums=(0, 1)))(*args)

    def single(h, w):
        return jnp.sum(COTANGENT * jaxloss.linear_cross_entropy(h, w, labels, where=keep))

    want_value, want_grads = jax.value_and_grad(single, argnums=(0, 1))(hidden, weight)
    np.testing.assert_allclose(value, want_value, rtol=1e-5)
    for got, want in zip(grads, want_grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.max(np.abs(want))))


OPTION_SETS = {  # every option at least once, and smoothing with and without class weights
    "ignore_index": {"ignore_index": 7},
    "smoothing": {"label_smoothing": 0.2},
    "smoothing+weights": {"label_smoothing": 0.1, "weights": True},
    "z_loss+soft_cap+ignore": {"ignore_index": 7, "z_loss": 1e-2, "soft_cap": 5.0},
}


def _option_inputs():
    """float64 inputs with masked classes (-inf) and label 7 on some rows, and class weights."""
    logits, labels, hidden, weight, keep = _inputs(1)
    logits, hidden, weight = (a.astype(np.float64) for a in (logits, hidden, weight))
    labels[::3] = 7
    logits[2, 40:] = -np.inf  # masked classes: smoothing must not count them
    labels[2] = 5
    class_weights = 0.5 + np.random.default_rng(2).random(V)
    return logits, labels, hidden, weight, keep, class_weights


@pytest.mark.parametrize("which", ["integer", "linear"])
@pytest.mark.parametrize("options", list(OPTION_SETS.values()), ids=list(OPTION_SETS))
def test_sharded_options_equal_one_device_in_float64(which, options, x64):
    """Each training option, on 4 vocabulary shards and 2 batch shards, equals the single-device
    cost in value and gradient to float64 rounding (label smoothing over the whole vocabulary)."""
    mesh = _mesh()
    logits, labels, hidden, weight, keep, class_weights = _option_inputs()
    options = dict(options)
    weighted = options.pop("weights", False)
    w_full = class_weights if weighted else None
    cot64 = COTANGENT.astype(np.float64)
    cot = _put(mesh, cot64, P("b"))
    y, k, cw = _put(mesh, labels, P("b")), _put(mesh, keep, P("b")), _put(mesh, class_weights, P("v"))

    def shard_weights(cw_local):
        return cw_local if weighted else None

    if which == "integer":

        def local(z, y, k, cw_local):
            return sharded.softmax_cross_entropy_with_integer_labels(
                z, y, axis_name="v", where=k, weights=shard_weights(cw_local), **options
            )

        cost = jax.shard_map(local, mesh=mesh, in_specs=(P("b", "v"), P("b"), P("b"), P("v")), out_specs=P("b"))
        program = jax.jit(jax.value_and_grad(lambda z: jnp.sum(cot * cost(z, y, k, cw))))
        value, grads = program(_put(mesh, logits, P("b", "v")))
        grads = (grads,)

        def single(z):
            losses = jaxloss.softmax_cross_entropy_with_integer_labels(z, labels, weights=w_full, **options)
            return jnp.sum(cot64 * jnp.where(keep, losses, 0.0))

        want_value, want_grads = jax.value_and_grad(single)(jnp.asarray(logits))
        want_grads = (want_grads,)
    else:

        def local(h, w, y, k, cw_local):
            return sharded.linear_cross_entropy(
                h, w, y, axis_name="v", where=k, block_size=5, weights=shard_weights(cw_local), **options
            )

        specs = (P("b", None), P(None, "v"), P("b"), P("b"), P("v"))
        cost = jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P("b"))
        program = jax.jit(jax.value_and_grad(lambda h, w: jnp.sum(cot * cost(h, w, y, k, cw)), argnums=(0, 1)))
        value, grads = program(_put(mesh, hidden, P("b", None)), _put(mesh, weight, P(None, "v")))

        def single(h, w):
            losses = jaxloss.linear_cross_entropy(h, w, labels, where=keep, weights=w_full, **options)
            return jnp.sum(cot64 * losses)

        want_value, want_grads = jax.value_and_grad(single, argnums=(0, 1))(jnp.asarray(hidden), jnp.asarray(weight))
    assert np.isfinite(float(value))
    np.testing.assert_allclose(value, want_value, rtol=1e-12)
    for got, want in zip(grads, want_grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("which", ["integer", "linear"])
def test_sharded_programs_never_move_the_logits(which):
    """Every collective of the value-and-gradient program is O(N) for the logits (plus, for the
    linear cost, the gradients of the replicated inputs); the logits are never gathered."""
    mesh = _mesh()
    logits, labels, hidden, weight, keep = _inputs()
    y, k = _put(mesh, labels, P("b")), _put(mesh, keep, P("b"))
    if which == "integer":
        cost = _sharded_integer(mesh)
        program = jax.jit(jax.value_and_grad(lambda z: jnp.sum(cost(z, y, k))))
        text = program.lower(_put(mesh, logits, P("b", "v"))).compile().as_text()
    else:
        cost = _sharded_linear(mesh)
        program = jax.jit(jax.value_and_grad(lambda h, w: jnp.sum(cost(h, w, y, k)), argnums=(0, 1)))
        text = program.lower(_put(mesh, hidden, P("b", None)), _put(mesh, weight, P(None, "v"))).compile().as_text()
    collectives = _collectives(text)
    assert collectives, "the program must communicate"
    assert not [c for c in collectives if c[0] == "all-gather"]
    rows = N // 2
    # The linear cost also all-reduces the (N, D) hidden-state gradient over "v" and, being data
    # parallel, its (D, V/4) weight-shard gradient over "b"; XLA may add a scalar to either.
    budget = {"integer": 2 * rows, "linear": max(rows * D, D * V // 4) + 8}[which]
    assert max(size for _, size in collectives) <= budget, collectives
    if which == "integer":  # Megatron's count: a pmax of one float per token and a psum of two
        assert sum(size for _, size in collectives) <= 3 * rows + 1, collectives


@pytest.mark.parametrize("name", ["weights", "label_smoothing", "label_smoothing + weights", "z_loss"])
def test_each_option_communicates_only_what_it_needs(name):
    """The floats per token of the forward pass, read from the compiled value-and-gradient program,
    are the README's count for each option (``bench.SHARDED_OPTIONS``); the backward adds none."""
    from jaxloss.tools import bench

    options, floats, _ = bench.SHARDED_OPTIONS[name]
    options = dict(options)
    weighted = options.pop("weights", False)
    mesh = _mesh()
    logits, labels, *_ = _inputs()

    def local(z, y, w):
        return sharded.softmax_cross_entropy_with_integer_labels(
            z, y, axis_name="v", weights=w if weighted else None, **options
        )

    cost = jax.shard_map(local, mesh=mesh, in_specs=(P("b", "v"), P("b"), P("v")), out_specs=P("b"))
    y, w = _put(mesh, labels, P("b")), _put(mesh, np.ones(V, np.float32), P("v"))
    program = jax.jit(jax.value_and_grad(lambda z: jnp.sum(cost(z, y, w))))
    collectives = _collectives(program.lower(_put(mesh, logits, P("b", "v"))).compile().as_text())
    rows = N // 2
    assert floats * rows <= sum(size for _, size in collectives) <= floats * rows + 1, collectives


@pytest.mark.parametrize("explicit", [True, False], ids=["explicit", "auto"])
@pytest.mark.parametrize("spec", [P("b", None), P(None, "v"), P("b", "v")], ids=["batch", "vocab", "both"])
@pytest.mark.parametrize("name", ["softmax_cross_entropy_with_integer_labels", "softmax_cross_entropy"])
def test_plain_costs_under_named_sharding(name, spec, explicit):
    """The ordinary costs, jitted on sharded inputs: the same numbers, and no all-gather."""
    mesh = _mesh(explicit)
    logits, labels, *_ = _inputs()
    targets = labels if name.endswith("integer_labels") else np.eye(V, dtype=np.float32)[labels]
    target_spec = P(spec[0]) if name.endswith("integer_labels") else spec
    z, y = _put(mesh, logits, spec), _put(mesh, targets, target_spec)
    cost = getattr(jaxloss, name)
    program = jax.jit(jax.value_and_grad(lambda z, y: jnp.mean(cost(z, y))))
    value, grad = program(z, y)
    want_value, want_grad = jax.value_and_grad(lambda z: jnp.mean(cost(z, targets)))(logits)
    np.testing.assert_allclose(value, want_value, rtol=1e-6)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-9)
    collectives = _collectives(program.lower(z, y).compile().as_text())
    assert not [c for c in collectives if c[0] == "all-gather"], collectives
    assert all(size <= 3 * N for _, size in collectives), collectives  # a few numbers per row


def test_sharded_costs_reject_bad_labels():
    mesh = _mesh()
    logits, labels, *_ = _inputs()

    def cost(z, y):
        return sharded.softmax_cross_entropy_with_integer_labels(z, y, axis_name="v")

    program = jax.jit(jax.shard_map(cost, mesh=mesh, in_specs=(P("b", "v"), P("b")), out_specs=P("b")))
    with pytest.raises(TypeError, match="labels"):
        program(_put(mesh, logits, P("b", "v")), _put(mesh, labels.astype(np.float32), P("b")))


def test_collectives_reads_shapes_and_bytes_from_hlo_text():
    text = (
        "%a = f32[16]{0} all-reduce(%x), channel_id=1\n"
        "%b = (f32[16]{0}, bf16[4,2]{1,0}) all-reduce(%y, %z), channel_id=2\n"
        "%c = s32[8,3]{1,0} all-gather(%w), dimensions={0}\n"
        "%d = f32[16]{0} add(%a, %a)\n"
    )
    assert hlo.collectives(text) == [("all-reduce", 16, 64), ("all-reduce", 24, 80), ("all-gather", 24, 96)]


def test_sharded_linear_token_stats_equal_one_device(x64):
    """``return_stats`` on 4 vocabulary shards: the lse and arg-max test over the whole vocabulary,
    as on one device, from the statistics already joined (the HLO count test covers the bytes)."""
    mesh = _mesh()
    _, labels, hidden, weight, keep, _ = _option_inputs()
    labels[:6] = np.argmax(hidden[:6] @ weight, axis=1)

    def local(h, w, y, k):
        loss, stats = sharded.linear_cross_entropy(h, w, y, axis_name="v", where=k, soft_cap=5.0, return_stats=True)
        return loss, stats.lse, stats.correct

    specs = (P("b", None), P(None, "v"), P("b"), P("b"))
    cost = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=(P("b"), P("b"), P("b"))))
    args = (_put(mesh, hidden, P("b", None)), _put(mesh, weight, P(None, "v")))
    loss, lse, correct = cost(*args, _put(mesh, labels, P("b")), _put(mesh, keep, P("b")))
    want_loss, want = jaxloss.linear_cross_entropy(hidden, weight, labels, where=keep, soft_cap=5.0, return_stats=True)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
    np.testing.assert_allclose(lse, want.lse, rtol=1e-12)
    np.testing.assert_array_equal(correct, want.correct)
    assert correct.dtype == jnp.bool_ and 3 <= int(correct.sum()) < N


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weights"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_sharded_linear_reductions_equal_one_device(reduction, weighted, x64):
    """``reduction=`` on 4 vocabulary shards: each batch shard's mean (over the weight of its
    examples that count, the class weights gathered over the vocabulary) or sum, and its gradients,
    equal the single-device reduced cost of those rows in float64."""
    mesh = _mesh()
    _, labels, hidden, weight, keep, class_weights = _option_inputs()
    w_full = class_weights if weighted else None

    def local(h, w, y, k, cw):
        loss = sharded.linear_cross_entropy(
            h, w, y, axis_name="v", where=k, ignore_index=7, weights=cw if weighted else None, reduction=reduction
        )
        return loss[None]

    specs = (P("b", None), P(None, "v"), P("b"), P("b"), P("v"))
    cost = jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P("b"))
    rest = (_put(mesh, labels, P("b")), _put(mesh, keep, P("b")), _put(mesh, class_weights, P("v")))
    program = jax.jit(jax.value_and_grad(lambda h, w: jnp.sum(jnp.array([1.0, -0.5]) * cost(h, w, *rest)), (0, 1)))
    value, grads = program(_put(mesh, hidden, P("b", None)), _put(mesh, weight, P(None, "v")))

    def single(h, w):
        halves = [
            jaxloss.linear_cross_entropy(
                h[s], w, labels[s], where=keep[s], ignore_index=7, weights=w_full, reduction=reduction
            )
            for s in (slice(0, N // 2), slice(N // 2, N))
        ]
        return halves[0] - 0.5 * halves[1]

    want_value, want_grads = jax.value_and_grad(single, (0, 1))(jnp.asarray(hidden), jnp.asarray(weight))
    assert abs(float(want_value)) > 0.1
    np.testing.assert_allclose(value, want_value, rtol=1e-12)
    for got, want in zip(grads, want_grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)


def test_sharded_linear_rejects_an_unknown_reduction():
    with pytest.raises(ValueError, match="reduction"):
        sharded.linear_cross_entropy(
            jnp.ones((2, 3)), jnp.ones((3, 4)), jnp.array([0, 1]), axis_name="v", reduction="avg"
        )


@pytest.mark.parametrize(
    "options", [{}, {"label_smoothing": 0.1, "z_loss": 1e-2, "soft_cap": 5.0}], ids=["plain", "options"]
)
def test_sharded_grad_norms_and_clipping_equal_one_device_in_float64(options, x64):
    """TokenStats.grad_norm and clip_norm on 4 vocabulary shards (and 2 batch shards) equal the
    single-device cost's: the norms over the whole weight, the clipped gradient summed."""
    mesh = _mesh()
    _, labels, hidden, weight, keep = _inputs(3)
    hidden, weight = hidden.astype(np.float64), weight.astype(np.float64)
    clip = 2.0

    def stats(h, w, y, k):
        _, s = sharded.linear_cross_entropy(h, w, y, axis_name="v", where=k, block_size=5, return_stats=True, **options)
        return s.grad_norm

    specs = (P("b", None), P(None, "v"), P("b"), P("b"))
    norms = jax.jit(jax.shard_map(stats, mesh=mesh, in_specs=specs, out_specs=P("b")))(
        _put(mesh, hidden, specs[0]),
        _put(mesh, weight, specs[1]),
        _put(mesh, labels, specs[2]),
        _put(mesh, keep, specs[3]),
    )
    _, want = jaxloss.linear_cross_entropy(hidden, weight, labels, where=keep, return_stats=True, **options)
    np.testing.assert_allclose(norms, want.grad_norm, rtol=1e-12)
    assert 0 < np.sum(np.asarray(want.grad_norm) > clip) < np.sum(keep)  # some clipped, some not

    def clipped(h, w, y, k):
        loss = sharded.linear_cross_entropy(
            h, w, y, axis_name="v", where=k, block_size=5, reduction="sum", clip_norm=clip, **options
        )
        return jax.lax.psum(loss, "b")

    grad = jax.jit(jax.grad(jax.shard_map(clipped, mesh=mesh, in_specs=specs, out_specs=P()), argnums=1))(
        _put(mesh, hidden, specs[0]),
        _put(mesh, weight, specs[1]),
        _put(mesh, labels, specs[2]),
        _put(mesh, keep, specs[3]),
    )

    def single(w):
        return jaxloss.linear_cross_entropy(hidden, w, labels, where=keep, reduction="sum", clip_norm=clip, **options)

    np.testing.assert_allclose(grad, jax.grad(single)(weight), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("options", [{}, {"z_loss": 1e-2, "soft_cap": 5.0}], ids=["plain", "options"])
def test_sharded_segment_norms_and_clipping_equal_one_device_in_float64(options, x64):
    """segment_ids on 4 vocabulary shards (blocks of 3 classes: a remainder) and 2 batch shards of
    whole sequences: the joined Gram matrices give the single-device cost's norms and clipping."""
    mesh = _mesh()
    rng = np.random.default_rng(5)
    hidden, weight = rng.normal(size=(4, 6, D)), rng.normal(size=(D, V))
    labels = rng.integers(0, V, (4, 6)).astype(np.int32)
    segments = np.array([[0, 0, 0, 1, 1, 2], [3, 3, 3, 3, 3, 3], [1, 2, 1, 2, 1, 2], [0, 1, 2, 3, 4, 4]])
    keep = np.ones((4, 6), bool)
    keep[1, 2] = False
    specs = (P("b", None, None), P(None, "v"), P("b", None), P("b", None), P("b", None))
    put = [_put(mesh, a, s) for a, s in zip((hidden, weight, labels, keep, segments), specs, strict=True)]

    def stats(h, w, y, k, s):
        _, t = sharded.linear_cross_entropy(
            h, w, y, axis_name="v", where=k, block_size=3, return_stats=True, segment_ids=s, **options
        )
        return t.grad_norm

    norms = jax.jit(jax.shard_map(stats, mesh=mesh, in_specs=specs, out_specs=P("b", None)))(*put)
    _, want = jaxloss.linear_cross_entropy(
        hidden, weight, labels, where=keep, return_stats=True, segment_ids=segments, **options
    )
    np.testing.assert_allclose(norms, want.grad_norm, rtol=1e-12)
    clip = float(np.median(want.grad_norm))
    assert 0 < np.sum(np.asarray(want.grad_norm) > clip) < keep.sum()

    def clipped(h, w, y, k, s):
        loss = sharded.linear_cross_entropy(
            h, w, y, axis_name="v", where=k, block_size=3, reduction="sum", clip_norm=clip, segment_ids=s, **options
        )
        return jax.lax.psum(loss, "b")

    grad = jax.jit(jax.grad(jax.shard_map(clipped, mesh=mesh, in_specs=specs, out_specs=P()), argnums=1))(*put)

    def single(w):
        return jaxloss.linear_cross_entropy(
            hidden, w, labels, where=keep, reduction="sum", clip_norm=clip, segment_ids=segments, **options
        )

    np.testing.assert_allclose(grad, jax.grad(single)(weight), rtol=1e-11, atol=1e-13)
