"""Each cost as a :class:`~jaxloss._rules.Core`: a stable formula from ``_stable`` paired with its
seed from ``seeds``, and the residuals that pass between them.

Residuals are the inputs (alive anyway) plus O(rows) statistics; the backward pass recomputes
``exp`` rather than saving an array the size of the logits. The third operand is the
integer-label cost's ``where`` mask, the probability costs' clamp limits, or the options
(``_options``) of the costs that take them.
"""

from __future__ import annotations

from typing import Any

import jax

from jaxloss import _stable, seeds
from jaxloss._rules import Axes, Core


def _sigmoid_forward(logits: jax.Array, labels: jax.Array, where: Any, axes: Axes) -> tuple[jax.Array, Any]:
    del where, axes
    return _stable.sigmoid_binary_cross_entropy(logits, labels), (logits, labels)


def _sigmoid_seed(residuals: Any, axes: Axes) -> tuple[jax.Array, jax.Array]:
    del axes
    logits, labels = residuals
    return (
        seeds.sigmoid_binary_cross_entropy_grad_from_inputs(logits, labels),
        seeds.sigmoid_binary_cross_entropy_labels_grad_from_inputs(logits, labels),
    )


def _softmax_forward(logits: jax.Array, labels: jax.Array, where: Any, axes: Axes) -> tuple[jax.Array, Any]:
    del where  # applied by the caller: -inf logits and zero labels
    loss, stats = _stable.softmax_cross_entropy(logits, labels, axes)
    return loss, (logits, labels, stats)


def _softmax_seed(residuals: Any, axes: Axes) -> tuple[jax.Array, jax.Array]:
    logits, labels, stats = residuals
    return (
        seeds.softmax_cross_entropy_grad_from_stats(logits, labels, stats, axes),
        seeds.softmax_cross_entropy_labels_grad_from_stats(logits, stats),
    )


def _integer_forward(logits: jax.Array, labels: jax.Array, where: Any, axes: Axes) -> tuple[jax.Array, Any]:
    loss, stats, live = _stable.softmax_cross_entropy_with_integer_labels(logits, labels, where, axes)
    return loss, (logits, labels, where, stats, live)


def _integer_seed(residuals: Any, axes: Axes) -> tuple[jax.Array, None]:
    logits, labels, where, stats, live = residuals
    kept = _stable.kept_logits(logits, where)
    return seeds.softmax_cross_entropy_with_integer_labels_grad_from_stats(kept, labels, stats, live, axes), None


def _binary_probs_forward(probs: jax.Array, labels: jax.Array, limits: Any, axes: Axes) -> tuple[jax.Array, Any]:
    del axes
    return _stable.binary_cross_entropy(probs, labels, limits), (probs, labels, limits)


def _binary_probs_seed(residuals: Any, axes: Axes) -> tuple[jax.Array, jax.Array]:
    del axes
    probs, labels, limits = residuals
    clamped = _stable.clamp_probs(probs, upper=True, limits=limits)
    return (
        seeds.binary_cross_entropy_grad_from_clamped(clamped, labels),
        seeds.binary_cross_entropy_labels_grad_from_clamped(clamped),
    )


def _categorical_probs_forward(probs: jax.Array, labels: jax.Array, limits: Any, axes: Axes) -> tuple[jax.Array, Any]:
    # `where` is applied by the caller: probability 1 and zero labels.
    loss, _ = _stable.categorical_cross_entropy(probs, labels, axes, limits)
    return loss, (probs, labels, limits)


def _categorical_probs_seed(residuals: Any, axes: Axes) -> tuple[jax.Array, jax.Array]:
    del axes
    probs, labels, limits = residuals
    clamped = _stable.clamp_probs(probs, upper=False, limits=limits)
    return (
        seeds.categorical_cross_entropy_grad_from_clamped(clamped, labels),
        seeds.categorical_cross_entropy_labels_grad_from_clamped(clamped),
    )


def _sigmoid_options_forward(logits: jax.Array, labels: jax.Array, options: Any, axes: Axes) -> tuple[jax.Array, Any]:
    del axes
    return _stable.sigmoid_cross_entropy_with_options(logits, labels, options), (logits, labels, options)


def _sigmoid_options_seed(residuals: Any, axes: Axes) -> tuple[jax.Array, jax.Array]:
    del axes
    logits, labels, options = residuals
    return seeds.sigmoid_options_grads_from_inputs(logits, labels, options)


def _softmax_options_forward(logits: jax.Array, labels: jax.Array, options: Any, axes: Axes) -> tuple[jax.Array, Any]:
    capped = _stable.soft_cap(logits, options.cap)
    loss, stats = _stable.softmax_cross_entropy_with_options(capped, labels, options, axes)
    return loss, (logits, capped, labels, options, stats)


def _softmax_options_seed(residuals: Any, axes: Axes) -> tuple[jax.Array, jax.Array]:
    logits, capped, labels, options, stats = residuals
    return seeds.softmax_options_grads_from_stats(logits, capped, labels, options, stats, axes)


SIGMOID = Core(_sigmoid_forward, _sigmoid_seed)
SOFTMAX = Core(_softmax_forward, _softmax_seed)
SOFTMAX_INTEGER = Core(_integer_forward, _integer_seed)
BINARY_PROBS = Core(_binary_probs_forward, _binary_probs_seed)
CATEGORICAL_PROBS = Core(_categorical_probs_forward, _categorical_probs_seed)
SIGMOID_OPTIONS = Core(_sigmoid_options_forward, _sigmoid_options_seed)
SOFTMAX_OPTIONS = Core(_softmax_options_forward, _softmax_options_seed)
