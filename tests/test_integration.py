"""jaxloss inside a real training stack: flax nnx + optax, and per-example gradients with vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from jaxloss import seeds

nnx = pytest.importorskip("flax.nnx")


def flax_context():
    """flax relies on rank and dtype promotion, which conftest.py makes strict."""
    return jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard")


class MLP(nnx.Module):
    def __init__(self, din, hidden, dout, *, rngs):
        self.hidden = nnx.Linear(din, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, dout, rngs=rngs)

    def features(self, x):
        return nnx.relu(self.hidden(x))

    def __call__(self, x):
        return self.out(self.features(x))


def data(key, n=64, din=8, classes=4):
    kx, kw = jax.random.split(key)
    x = jax.random.normal(kx, (n, din))
    labels = jnp.argmax(x @ jax.random.normal(kw, (din, classes)), axis=1)
    return x, labels


def train_steps(cost, x, y, dout, steps=10):
    """Full-batch adam steps from a fixed init; returns the loss before each step and the final loss."""
    model = MLP(x.shape[1], 16, dout, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(params)

    def loss_fn(params):
        return cost(nnx.merge(graphdef, params)(x), y).mean()

    @jax.jit
    def step(params, opt_state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    losses = []
    for _ in range(steps):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    losses.append(float(loss_fn(params)))
    return np.asarray(losses)


@pytest.mark.parametrize(
    ("name", "ours", "theirs"),
    [
        (
            "integer",
            jaxloss.softmax_cross_entropy_with_integer_labels,
            optax.losses.softmax_cross_entropy_with_integer_labels,
        ),
        (
            "binary",
            lambda z, y: jaxloss.sigmoid_binary_cross_entropy(z[:, 0], y),
            lambda z, y: optax.losses.sigmoid_binary_cross_entropy(z[:, 0], y),
        ),
        (
            "multilabel",
            jaxloss.sigmoid_multilabel_cross_entropy,
            lambda z, y: optax.losses.sigmoid_binary_cross_entropy(z, y).sum(-1),
        ),
    ],
)
def test_flax_optax_training_matches_optax_losses(name, ours, theirs):
    x, labels = data(jax.random.key(1))
    if name == "integer":
        y, dout = labels, 4
    elif name == "binary":
        y, dout = (labels % 2).astype(jnp.float32), 1
    else:
        y, dout = jnp.stack([labels % 2 == 0, labels >= 2], axis=1).astype(jnp.float32), 2
    rank, dtype = flax_context()
    with rank, dtype:
        with_jaxloss = train_steps(ours, x, y, dout)
        with_optax = train_steps(theirs, x, y, dout)
    assert with_jaxloss[-1] < 0.9 * with_jaxloss[0], with_jaxloss
    np.testing.assert_allclose(with_jaxloss, with_optax, rtol=0, atol=1e-6)


def test_per_example_output_layer_gradients_are_seed_outer_products():
    x, labels = data(jax.random.key(2), n=32, classes=5)
    rank, dtype = flax_context()
    with rank, dtype:
        model = MLP(x.shape[1], 16, 5, rngs=nnx.Rngs(3))
        graphdef, params = nnx.split(model)

        def example_loss(params, xi, yi):
            return jaxloss.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, params)(xi), yi)

        grads = jax.jit(jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0)))(params, x, labels)
        h = model.features(x)
        delta = seeds.softmax_cross_entropy_with_integer_labels_grad(model(x), labels)
    d_kernel = grads["out"]["kernel"][...]
    d_bias = grads["out"]["bias"][...]
    assert d_kernel.shape == (32, 16, 5)
    for i in range(x.shape[0]):
        np.testing.assert_allclose(d_kernel[i], jnp.outer(h[i], delta[i]), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(d_bias[i], delta[i], rtol=1e-5, atol=1e-6)
    norms = jnp.linalg.norm(d_kernel.reshape(32, -1), axis=1)
    np.testing.assert_allclose(norms, jnp.linalg.norm(delta, axis=1) * jnp.linalg.norm(h, axis=1), rtol=1e-5)
