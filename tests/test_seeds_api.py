"""The public seeds as an editor sees them (issue 26): each option is an explicit keyword-only argument with
its cost's name, default and type (``inspect.signature`` and mypy), a seed called with options is the gradient of
its cost's sum with them, and every public seed documents its math, Args, Returns, Examples and References."""

import inspect
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss import seeds

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Each public seed whose cost takes options, with the argument it differentiates.
WITH_OPTIONS = {
    "sigmoid_binary_cross_entropy_grad": 0,
    "sigmoid_binary_cross_entropy_labels_grad": 1,
    "sigmoid_multilabel_cross_entropy_grad": 0,
    "softmax_cross_entropy_grad": 0,
    "softmax_cross_entropy_labels_grad": 1,
    "softmax_cross_entropy_with_integer_labels_grad": 0,
    "sigmoid_focal_loss_grad": 0,
    "sigmoid_focal_loss_labels_grad": 1,
    "poly_loss_cross_entropy_grad": 0,
    "poly_loss_cross_entropy_labels_grad": 1,
}


def _cost_name(seed_name: str) -> str:
    """The cost a seed belongs to (``softmax_cross_entropy_with_integer_labels_grad`` keeps its ``_labels``)."""
    base = seed_name.removesuffix("_grad")
    return base if hasattr(jaxloss, base) else base.removesuffix("_labels")


def _public_functions() -> list[str]:
    """The public functions of jaxloss.seeds: its ``__all__`` and any function defined there without a leading ``_``."""
    defined = {
        name
        for name, value in vars(seeds).items()
        if inspect.isfunction(value) and value.__module__ == seeds.__name__ and not name.startswith("_")
    }
    return sorted(defined | set(seeds.__all__))


SEEDS_OF_COSTS = [name for name in _public_functions() if hasattr(jaxloss, _cost_name(name))]


def _options(fn) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(fn).parameters.values() if p.kind == inspect.Parameter.KEYWORD_ONLY]


# --- signatures ---------------------------------------------------------------------------


def test_the_seeds_with_options_are_those_whose_cost_takes_options():
    with_options = {name for name in SEEDS_OF_COSTS if _options(getattr(jaxloss, _cost_name(name)))}
    assert with_options == set(WITH_OPTIONS)


@pytest.mark.parametrize("name", _public_functions())
def test_no_public_seed_takes_arbitrary_arguments(name):
    kinds = {p.kind for p in inspect.signature(getattr(seeds, name)).parameters.values()}
    assert inspect.Parameter.VAR_KEYWORD not in kinds, f"{name} takes **kwargs"
    assert inspect.Parameter.VAR_POSITIONAL not in kinds, f"{name} takes *args"


@pytest.mark.parametrize("name", sorted(WITH_OPTIONS))
def test_a_seed_lists_its_costs_options_with_their_defaults_and_types(name):
    seed, cost = getattr(seeds, name), getattr(jaxloss, _cost_name(name))
    ours = [(p.name, p.default, p.annotation) for p in _options(seed)]
    theirs = [(p.name, p.default, p.annotation) for p in _options(cost)]
    assert theirs, f"{cost.__name__} has no keyword-only options"
    assert ours == theirs
    # and the whole call: the same arguments, kinds, defaults, types and return type as the cost
    assert inspect.signature(seed) == inspect.signature(cost)


@pytest.mark.parametrize("name", SEEDS_OF_COSTS)
def test_a_seed_takes_its_costs_arguments(name):
    seed, cost = getattr(seeds, name), getattr(jaxloss, _cost_name(name))
    assert list(inspect.signature(seed).parameters) == list(inspect.signature(cost).parameters)


@pytest.mark.parametrize("name", sorted(WITH_OPTIONS))
def test_an_option_cannot_be_passed_by_position(name):
    seed = getattr(seeds, name)
    positional = [
        p
        for p in inspect.signature(seed).parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    args = [jnp.zeros(3), jnp.zeros(3, jnp.int32) if "integer" in name else jnp.zeros(3)]
    args += [p.default for p in positional[2:]]
    with pytest.raises(TypeError, match="positional argument"):
        seed(*args, 0.5)


# The seeds' signatures as mypy sees them: tests/test_signatures.py (one mypy run for all).


# --- a seed with options is the gradient of its cost's sum with them ------------------------------------

_RNG = np.random.default_rng(26)
LOGITS = _RNG.normal(size=(3, 4)) * 3.0
SOFT = _RNG.uniform(size=(3, 4))
WEIGHTS = _RNG.uniform(0.5, 2.0, size=(3, 4))
CLASS_WEIGHTS = _RNG.uniform(0.5, 2.0, size=(4,))
INTEGER = np.array([0, 3, 1])
CLASS_MASK = np.array([[True, True, False, True]] * 3)
EXAMPLE_MASK = np.array([True, False, True])

CASES = [
    ("sigmoid_binary_cross_entropy_grad", {"label_smoothing": 0.1, "pos_weight": 2.0}),
    ("sigmoid_binary_cross_entropy_grad", {"weights": WEIGHTS, "soft_cap": 2.0}),
    ("sigmoid_binary_cross_entropy_labels_grad", {"label_smoothing": 0.2, "weights": WEIGHTS}),
    ("sigmoid_binary_cross_entropy_labels_grad", {"pos_weight": 0.5, "soft_cap": 3.0}),
    ("sigmoid_multilabel_cross_entropy_grad", {"pos_weight": 2.0, "soft_cap": 2.0}),
    ("sigmoid_multilabel_cross_entropy_grad", {"label_smoothing": 0.1, "weights": WEIGHTS, "where": CLASS_MASK}),
    ("softmax_cross_entropy_grad", {"z_loss": 1e-2, "soft_cap": 2.0}),
    ("softmax_cross_entropy_grad", {"label_smoothing": 0.1, "weights": CLASS_WEIGHTS, "where": EXAMPLE_MASK}),
    ("softmax_cross_entropy_labels_grad", {"label_smoothing": 0.1, "weights": CLASS_WEIGHTS}),
    ("softmax_cross_entropy_labels_grad", {"z_loss": 0.1, "soft_cap": 2.0}),
    ("softmax_cross_entropy_with_integer_labels_grad", {"ignore_index": 1, "z_loss": 1e-2}),
    (
        "softmax_cross_entropy_with_integer_labels_grad",
        {"label_smoothing": 0.1, "weights": CLASS_WEIGHTS, "soft_cap": 3.0},
    ),
    ("sigmoid_focal_loss_grad", {"alpha": 0.25, "gamma": 0.5}),
    ("sigmoid_focal_loss_grad", {"gamma": 3.0}),
    ("sigmoid_focal_loss_labels_grad", {"alpha": 0.75}),
    ("sigmoid_focal_loss_labels_grad", {"alpha": 0.25, "gamma": 1.5}),
    ("poly_loss_cross_entropy_grad", {"epsilon": -1.0}),
    ("poly_loss_cross_entropy_grad", {"epsilon": 1.0, "axis": 0}),
    ("poly_loss_cross_entropy_labels_grad", {"epsilon": 0.5}),
    ("poly_loss_cross_entropy_labels_grad", {"epsilon": 2.0, "where": CLASS_MASK}),
]


def test_the_cases_cover_every_seed_with_options():
    assert {name for name, _ in CASES} == set(WITH_OPTIONS)


def _case_id(case):
    name, options = case
    return f"{name}[{','.join(options)}]"


@pytest.mark.parametrize(("name", "options"), CASES, ids=[_case_id(case) for case in CASES])
def test_a_seed_with_options_is_the_gradient_of_its_costs_sum(x64, name, options):
    seed, cost = getattr(seeds, name), getattr(jaxloss, _cost_name(name))
    argnum = WITH_OPTIONS[name]
    logits = jnp.asarray(LOGITS)
    labels = jnp.asarray(INTEGER if "integer" in name else SOFT)
    options = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    got = seed(logits, labels, **options)
    want = jax.grad(lambda z, y: jnp.sum(cost(z, y, **options)), argnums=argnum)(logits, labels)
    assert got.dtype == jnp.float64 and got.shape == (logits, labels)[argnum].shape
    assert np.all(np.isfinite(got)), got
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-15)
    # the option is in play: the seed differs from the seed without it
    assert not np.allclose(np.asarray(got), np.asarray(seed(logits, labels))), f"{name}: {options} changed nothing"


# --- docstrings ---------------------------------------------------------------------------


def _section(doc: str, title: str) -> str:
    """The text of a Google-style section, up to the next section or the end."""
    match = re.search(rf"^\s*{title}:\n(.*?)(?=^\s*[A-Z][a-z]+:\n|\Z)", doc, flags=re.S | re.M)
    return match.group(1) if match else ""


@pytest.mark.parametrize("name", _public_functions())
def test_every_public_seed_has_a_complete_docstring(name):
    fn = getattr(seeds, name)
    doc = inspect.getdoc(fn) or ""
    for part in ("Args:", "Returns:", "Examples:", "References:", ".. math::", ">>> "):
        assert part in doc, f"{name}: no {part!r} in its docstring"
    summary = doc.splitlines()[0]
    assert summary and not summary.startswith(" "), name
    args = _section(doc, "Args")
    for parameter in inspect.signature(fn).parameters:
        assert re.search(rf"^\s*{parameter}:", args, flags=re.M), f"{name}: Args lacks {parameter}"
    assert "shape" in _section(doc, "Returns") and "dtype" in _section(doc, "Returns"), name
    assert "Lalin" in _section(doc, "References"), name
    if "focal" in name:
        assert "Lin et al." in _section(doc, "References"), name
    if "poly" in name:
        assert "Leng et al." in _section(doc, "References"), name
