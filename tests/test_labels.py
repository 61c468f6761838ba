"""Integer labels in any integer dtype mean the same classes (issue 14, part 1).

The costs compare labels with class indices and test them against the number of classes; done in
the labels' own dtype, uint8 labels with 259 classes wrapped (label 0 matched classes 0 and 256,
every label was out of range with int8 and 200 classes). Each case is compared with the same
labels as int32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss
from jaxloss import sharded

NAMESPACES = {"jaxloss": jaxloss, "jaxloss.forward": jaxloss.forward, "jaxloss.reference": jaxloss.reference}

# (dtype, number of classes beyond what the dtype counts, labels that the dtype holds)
NARROW = [
    (np.uint8, 259, [0, 2, 255]),
    (np.int8, 200, [0, 127, 5]),
    (np.int16, 40000, [0, 32767, 9]),
    (np.uint16, 65540, [0, 65535, 3]),
]


def _logits(rows: int, classes: int) -> jax.Array:
    return jax.random.normal(jax.random.key(0), (rows, classes), jnp.float32)


def _value_and_grad(cost, logits, labels, **options):
    return jax.jit(jax.value_and_grad(lambda z: jnp.sum(cost(z, labels, **options))))(logits)


@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize(("dtype", "classes", "labels"), NARROW, ids=[d.__name__ for d, _, _ in NARROW])
def test_narrow_integer_labels_equal_int32_labels(namespace, dtype, classes, labels):
    cost = NAMESPACES[namespace].softmax_cross_entropy_with_integer_labels
    logits = _logits(len(labels), classes)
    narrow = jnp.asarray(np.array(labels, dtype))
    assert narrow.dtype == dtype
    want_loss, want_grad = _value_and_grad(cost, logits, jnp.asarray(labels, jnp.int32))
    loss, grad = _value_and_grad(cost, logits, narrow)
    assert np.isfinite(float(loss))
    np.testing.assert_array_equal(np.asarray(loss), np.asarray(want_loss))
    np.testing.assert_array_equal(np.asarray(grad), np.asarray(want_grad))
    # The gradient is p - onehot(l) with one -1 term per row, at the label only.
    rows = np.arange(len(labels))
    assert np.all(np.asarray(grad)[rows, labels] < 0)
    assert np.sum(np.asarray(grad) < 0) == len(labels)


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_uint8_labels_with_options_equal_int32_labels(namespace):
    cost = NAMESPACES[namespace].softmax_cross_entropy_with_integer_labels
    logits = _logits(3, 259)
    options = dict(label_smoothing=0.1, z_loss=1e-3, weights=jnp.linspace(0.5, 1.5, 259), soft_cap=20.0)
    held = jnp.asarray(np.array([250, 1, 255], np.uint8))
    want = _value_and_grad(cost, logits, jnp.asarray([250, 1, 255], jnp.int32), **options)
    got = _value_and_grad(cost, logits, held, **options)
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(want[0]))
    np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(want[1]))


def test_uint8_labels_in_the_fused_output_layer_equal_int32_labels():
    hidden = jax.random.normal(jax.random.key(1), (4, 8), jnp.float32)
    weight = jax.random.normal(jax.random.key(2), (8, 259), jnp.float32)
    labels = np.array([255, 0, 7, 254], np.uint8)

    @jax.jit
    def run(y):
        return jax.value_and_grad(lambda h, w: jnp.sum(jaxloss.linear_cross_entropy(h, w, y, block_size=64)), (0, 1))(
            hidden, weight
        )

    want = run(jnp.asarray(labels, jnp.int32))
    got = run(jnp.asarray(labels))
    assert np.isfinite(float(got[0]))
    np.testing.assert_allclose(np.asarray(got[0]), np.asarray(want[0]), rtol=0)
    for g, w in zip(got[1], want[1], strict=True):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def test_uint8_labels_on_vocabulary_sharded_logits_equal_int32_labels():
    mesh = jax.make_mesh((1,), ("vocab",), devices=jax.devices("cpu")[:1])
    cost = jax.jit(
        jax.shard_map(
            lambda z, y: sharded.softmax_cross_entropy_with_integer_labels(z, y, axis_name="vocab"),
            mesh=mesh,
            in_specs=(P(None, "vocab"), P()),
            out_specs=P(),
        )
    )
    logits = _logits(3, 259)
    labels = np.array([255, 0, 100], np.uint8)
    want = jaxloss.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(labels, jnp.int32))
    got = cost(jax.device_put(logits, NamedSharding(mesh, P(None, "vocab"))), jnp.asarray(labels))
    assert np.all(np.isfinite(np.asarray(got)))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=2e-7)


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_int64_labels_beyond_int32_without_x64_are_out_of_range_not_wrapped(namespace):
    assert not jax.config.read("jax_enable_x64")
    cost = NAMESPACES[namespace].softmax_cross_entropy_with_integer_labels
    logits = _logits(3, 4)
    labels = np.array([2**32 + 1, 1, -(2**32) + 2], np.int64)  # int32 wrapping would give 1, 1, 2
    loss = np.asarray(cost(logits, labels))
    assert np.isnan(loss[0]) and np.isnan(loss[2])
    np.testing.assert_allclose(loss[1], np.asarray(cost(logits, jnp.array([0, 1, 2])))[1], rtol=0)


def test_int64_labels_under_x64_stay_int64(x64):
    logits = jnp.zeros((2, 3), jnp.float64)
    labels = jnp.array([2**40, 1], jnp.int64)
    loss = np.asarray(jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels))
    assert np.isnan(loss[0])
    np.testing.assert_allclose(loss[1], np.log(3.0), rtol=1e-15)


def test_ignore_index_beyond_the_labels_dtype_is_a_clear_error_and_torchs_minus_100_works_with_uint8():
    logits = _logits(2, 300)
    labels = jnp.asarray(np.array([3, 200], np.uint8))
    with pytest.raises(ValueError, match=r"`ignore_index` 1099511627776 is outside the range .*int32"):
        jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels, ignore_index=2**40)
    with pytest.raises(ValueError, match=r"`ignore_index`"):
        jaxloss.linear_cross_entropy(jnp.ones((2, 3)), jnp.ones((3, 300)), labels, ignore_index=2**40)
    kept = jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels, ignore_index=-100)
    plain = jaxloss.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray([3, 200]))
    np.testing.assert_array_equal(np.asarray(kept), np.asarray(plain))
    dropped = jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels, ignore_index=200)
    assert float(dropped[1]) == 0.0 and float(dropped[0]) == float(plain[0])
