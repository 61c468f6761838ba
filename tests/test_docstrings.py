"""Every public docstring is complete, names no private module, and states its mode of differentiation truly."""

from __future__ import annotations

import inspect
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss import forward, grad_norms, reference, seeds, sharded

NAMESPACES = (jaxloss, forward, reference, seeds, grad_norms, sharded)
PUBLIC = [
    (module.__name__, name, getattr(module, name))
    for module in NAMESPACES
    for name in module.__all__
    if not inspect.ismodule(getattr(module, name))
]
FUNCTIONS = [entry for entry in PUBLIC if not inspect.isclass(entry[2])]
CLASSES = [entry for entry in PUBLIC if inspect.isclass(entry[2])]
REVERSE_ONLY = [name for module, name, _ in FUNCTIONS if module == "jaxloss" and name != "mean"]


def test_the_namespaces_hold_what_the_issue_counts():
    # 61 public functions when issue 26 was filed; a shrinking list would pass the tests below vacuously.
    assert len(FUNCTIONS) >= 61
    assert [name for _, name, _ in CLASSES] == ["TokenStats"]


@pytest.mark.parametrize(("module", "name", "function"), FUNCTIONS, ids=[f"{m}.{n}" for m, n, _ in FUNCTIONS])
def test_every_public_function_has_its_math_args_returns_examples_and_references(module, name, function):
    doc = inspect.getdoc(function) or ""
    missing = [part for part in ("Args:", "Returns:", "Examples:", "References:") if f"\n{part}\n" not in doc]
    assert not missing, f"{module}.{name} lacks {missing}"
    assert ".. math::" in doc or ":math:" in doc, f"{module}.{name} has no math"
    assert ">>> " in doc.split("Examples:")[1], f"{module}.{name}: its Examples run nothing"
    section = re.split(r"\n(?=\S)", doc.split("\nArgs:\n")[1])[0]  # up to the next heading
    listed = {word for line in re.findall(r"^  ([\w, ]+):", section, re.MULTILINE) for word in line.split(", ")}
    parameters = set(inspect.signature(function).parameters)
    assert parameters <= listed, f"{module}.{name}: Args omit {sorted(parameters - listed)}"


def test_token_stats_documents_each_field_with_an_example_and_references():
    doc = inspect.getdoc(jaxloss.TokenStats) or ""
    for field in jaxloss.TokenStats._fields:
        assert f"\n  {field}:" in doc
    assert ">>> " in doc and "\nReferences:\n" in doc


@pytest.mark.parametrize(
    "documented",
    [(module.__name__, module) for module in NAMESPACES] + [(f"{m}.{n}", f) for m, n, f in PUBLIC],
    ids=lambda entry: entry[0],
)
def test_no_public_docstring_sends_a_reader_to_a_private_module(documented):
    name, thing = documented
    assert not re.search(r"jaxloss\._\w|\b_\w+\.py\b|plan_blocks", inspect.getdoc(thing) or ""), name


def _call(name: str, namespace) -> tuple:
    """A cost of ``namespace`` as a function of its first argument alone, and a point to take it at."""
    cost = getattr(namespace, name)
    x = jnp.array([[0.3, -1.2, 2.0], [1.5, 0.25, -0.5]], jnp.float32)
    if name == "linear_cross_entropy":
        weight = jnp.linspace(-1.0, 1.0, 12, dtype=jnp.float32).reshape(3, 4)
        return (lambda h: cost(h, weight, jnp.array([1, 3]), reduction="sum")), x
    if name.startswith(("binary", "categorical", "multilabel")):
        return (lambda a: jnp.sum(cost(a, jnp.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])))), jax.nn.softmax(x)
    if "integer" in name:
        return (lambda z: jnp.sum(cost(z, jnp.array([2, 0])))), x
    return (lambda z: jnp.sum(cost(z, jax.nn.softmax(x[::-1])))), x


@pytest.mark.parametrize("name", REVERSE_ONLY)
def test_reverse_mode_only_is_stated_and_true_and_the_named_twin_does_forward_mode(name):
    doc = inspect.getdoc(getattr(jaxloss, name)) or ""
    assert "Reverse mode only" in doc
    f, x = _call(name, jaxloss)
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(f, (x,), (jnp.ones_like(x),))
    twin = re.search(r"``jaxloss\.forward\.(\w+)``", doc)
    assert twin is not None, f"{name} names no forward-mode twin"
    if twin.group(1) != name:  # linear_cross_entropy: the integer-label cost of the formed logits
        assert name == "linear_cross_entropy" and twin.group(1) == "softmax_cross_entropy_with_integer_labels"
        return
    g, _ = _call(name, forward)
    tangent = jnp.cos(jnp.arange(x.size, dtype=x.dtype)).reshape(x.shape)
    _, directional = jax.jvp(g, (x,), (tangent,))
    np.testing.assert_allclose(directional, jnp.vdot(jax.grad(f)(x), tangent), rtol=1e-5, atol=1e-6)
    assert jnp.all(jnp.isfinite(jax.hessian(g)(x)))
    assert "Reverse mode only" not in (inspect.getdoc(getattr(forward, name)) or "")
    assert "Reverse mode only" not in (inspect.getdoc(getattr(reference, name)) or "")


@pytest.mark.parametrize("name", sharded.__all__)
def test_the_sharded_costs_state_reverse_mode_only(name):
    assert "Reverse mode only" in (inspect.getdoc(getattr(sharded, name)) or "")
