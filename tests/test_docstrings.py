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
CUSTOM_VJP = [name for module, name, _ in FUNCTIONS if module == "jaxloss" and name != "mean"]


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


@pytest.mark.parametrize("name", CUSTOM_VJP)
def test_each_custom_vjp_cost_says_forward_mode_needs_a_twin_and_names_it(name):
    """That jax.jvp and jax.jacfwd raise for each cost, that jax.hessian works, and that the twin does forward
    mode: tests/test_transforms.py (and below for the fused output layer, which has no twin of its own)."""
    doc = inspect.getdoc(getattr(jaxloss, name)) or ""
    flat = doc.replace("\n", " ")
    assert "Forward mode needs the" in flat and "``jax.jvp`` and ``jax.jacfwd`` raise" in flat
    assert "``jax.hessian`` (forward over reverse) work" in flat
    twin = re.search(r"``jaxloss\.forward\.(\w+)``", doc)
    assert twin is not None, f"{name} names no forward-mode twin"
    assert twin.group(1) == (name if name != "linear_cross_entropy" else "softmax_cross_entropy_with_integer_labels")
    assert "Forward mode needs" not in (inspect.getdoc(getattr(forward, twin.group(1))) or "")
    assert "Forward mode needs" not in (inspect.getdoc(getattr(reference, twin.group(1))) or "")


def test_the_fused_output_layer_has_no_jvp_but_a_hessian_and_its_named_twin_gives_the_jvp(x64):
    hidden = jnp.array([[0.3, -1.2, 2.0], [1.5, 0.25, -0.5]])
    weight = jnp.sin(jnp.arange(15.0)).reshape(3, 5)
    labels = jnp.array([1, 4])
    tangent = jnp.cos(jnp.arange(hidden.size, dtype=hidden.dtype)).reshape(hidden.shape)

    def fused(h):
        return jaxloss.linear_cross_entropy(h, weight, labels, reduction="sum")

    def twin(h):
        return jnp.sum(forward.softmax_cross_entropy_with_integer_labels(h @ weight, labels))

    for transform in (lambda f: jax.jvp(f, (hidden,), (tangent,)), lambda f: jax.jacfwd(f)(hidden)):
        with pytest.raises(TypeError, match="forward-mode"):
            transform(fused)
    _, directional = jax.jvp(twin, (hidden,), (tangent,))
    np.testing.assert_allclose(directional, jnp.vdot(jax.grad(fused)(hidden), tangent), rtol=1e-12)
    hessians = jax.jit(lambda h: (jax.hessian(fused)(h), jax.hessian(twin)(h)))(hidden)
    np.testing.assert_allclose(*hessians, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", sharded.__all__)
def test_the_sharded_costs_say_they_have_no_forward_mode(name):
    doc = (inspect.getdoc(getattr(sharded, name)) or "").replace("\n", " ")
    assert "No forward mode" in doc and "``jax.jvp`` and ``jax.jacfwd`` raise" in doc
