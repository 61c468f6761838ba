"""The article's formulas as plain JAX: the activation, then the cost, differentiated by autodiff.

Same names, signatures, validation, masks and NaN conventions as :mod:`jaxloss`, no custom rule.
These are the baseline that the closed-form rules are compared against, including where they
fail: the sigmoid rounds to 0 or 1 once |z| passes about 17 in float32 and the loss turns inf or
NaN, and the softmax overflows once a logit passes about 88.
"""

from jaxloss import _costs, _rules

_TWINS = _costs.twins(_rules.REFERENCE)

sigmoid_binary_cross_entropy = _TWINS["sigmoid_binary_cross_entropy"]
sigmoid_multilabel_cross_entropy = _TWINS["sigmoid_multilabel_cross_entropy"]
softmax_cross_entropy = _TWINS["softmax_cross_entropy"]
safe_softmax_cross_entropy = _TWINS["safe_softmax_cross_entropy"]
softmax_cross_entropy_with_integer_labels = _TWINS["softmax_cross_entropy_with_integer_labels"]
binary_cross_entropy = _TWINS["binary_cross_entropy"]
categorical_cross_entropy = _TWINS["categorical_cross_entropy"]
multilabel_cross_entropy = _TWINS["multilabel_cross_entropy"]
sigmoid_focal_loss = _TWINS["sigmoid_focal_loss"]
poly_loss_cross_entropy = _TWINS["poly_loss_cross_entropy"]
kl_divergence = _TWINS["kl_divergence"]
kl_divergence_with_log_targets = _TWINS["kl_divergence_with_log_targets"]

__all__ = list(_costs.NAMES)
