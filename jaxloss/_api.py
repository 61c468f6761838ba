"""The public costs of one implementation, by name; each namespace module unpacks one of these."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax

from jaxloss import _binary, _categorical, _multilabel
from jaxloss._impl import Implementation


class Costs(NamedTuple):
    """The eight public costs, in the order of ``NAMES``."""

    sigmoid_binary_cross_entropy: Callable[..., jax.Array]
    softmax_cross_entropy: Callable[..., jax.Array]
    softmax_cross_entropy_with_integer_labels: Callable[..., jax.Array]
    safe_softmax_cross_entropy: Callable[..., jax.Array]
    sigmoid_multilabel_cross_entropy: Callable[..., jax.Array]
    binary_cross_entropy: Callable[..., jax.Array]
    categorical_cross_entropy: Callable[..., jax.Array]
    multilabel_cross_entropy: Callable[..., jax.Array]


NAMES: tuple[str, ...] = Costs._fields


def build(impl: Implementation) -> Costs:
    """Builds every public cost on ``impl``."""
    return Costs(
        _binary.make_sigmoid_binary_cross_entropy(impl),
        _categorical.make_softmax_cross_entropy(impl),
        _categorical.make_softmax_cross_entropy_with_integer_labels(impl),
        _categorical.make_safe_softmax_cross_entropy(impl),
        _multilabel.make_sigmoid_multilabel_cross_entropy(impl),
        _binary.make_binary_cross_entropy(impl),
        _categorical.make_categorical_cross_entropy(impl),
        _multilabel.make_multilabel_cross_entropy(impl),
    )
