"""The one list of the costs that every namespace holds (:mod:`jaxloss.forward` and
:mod:`jaxloss.reference` name their twins one by one, so that their signatures show)."""

from __future__ import annotations

from collections.abc import Callable

import jax

from jaxloss import _divergence, _probability, _sigmoid, _softmax

COSTS: tuple[Callable[..., jax.Array], ...] = (
    _sigmoid.sigmoid_binary_cross_entropy,
    _sigmoid.sigmoid_multilabel_cross_entropy,
    _softmax.softmax_cross_entropy,
    _softmax.safe_softmax_cross_entropy,
    _softmax.softmax_cross_entropy_with_integer_labels,
    _probability.binary_cross_entropy,
    _probability.categorical_cross_entropy,
    _probability.multilabel_cross_entropy,
    _sigmoid.sigmoid_focal_loss,
    _softmax.poly_loss_cross_entropy,
    _divergence.kl_divergence,
    _divergence.kl_divergence_with_log_targets,
)

NAMES: tuple[str, ...] = tuple(cost.__name__ for cost in COSTS)
