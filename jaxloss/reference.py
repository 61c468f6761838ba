"""The article's formulas as plain JAX: the activation, then the cost, differentiated by autodiff.

Same names, signatures, validation, masks and NaN conventions as :mod:`jaxloss`, no custom rule.
These are the baseline that the closed-form rules are compared against, including where they
fail: the sigmoid rounds to 0 or 1 once ``|z|`` passes about 17 in float32 and the loss turns inf or
NaN, and the softmax overflows once a logit passes about 88.
"""

from jaxloss import _divergence, _probability, _rules, _sigmoid, _softmax

# Each twin has its cost's signature (``_rules.in_namespace`` is typed with a ParamSpec), so
# editors, ``inspect.signature`` and mypy see the arguments; go-to-definition on the second
# argument reaches the cost.
sigmoid_binary_cross_entropy = _rules.in_namespace(_sigmoid.sigmoid_binary_cross_entropy, _rules.REFERENCE)
sigmoid_multilabel_cross_entropy = _rules.in_namespace(_sigmoid.sigmoid_multilabel_cross_entropy, _rules.REFERENCE)
softmax_cross_entropy = _rules.in_namespace(_softmax.softmax_cross_entropy, _rules.REFERENCE)
safe_softmax_cross_entropy = _rules.in_namespace(_softmax.safe_softmax_cross_entropy, _rules.REFERENCE)
softmax_cross_entropy_with_integer_labels = _rules.in_namespace(
    _softmax.softmax_cross_entropy_with_integer_labels, _rules.REFERENCE
)
binary_cross_entropy = _rules.in_namespace(_probability.binary_cross_entropy, _rules.REFERENCE)
categorical_cross_entropy = _rules.in_namespace(_probability.categorical_cross_entropy, _rules.REFERENCE)
multilabel_cross_entropy = _rules.in_namespace(_probability.multilabel_cross_entropy, _rules.REFERENCE)
sigmoid_focal_loss = _rules.in_namespace(_sigmoid.sigmoid_focal_loss, _rules.REFERENCE)
poly_loss_cross_entropy = _rules.in_namespace(_softmax.poly_loss_cross_entropy, _rules.REFERENCE)
kl_divergence = _rules.in_namespace(_divergence.kl_divergence, _rules.REFERENCE)
kl_divergence_with_log_targets = _rules.in_namespace(_divergence.kl_divergence_with_log_targets, _rules.REFERENCE)

__all__ = [
    "binary_cross_entropy",
    "categorical_cross_entropy",
    "kl_divergence",
    "kl_divergence_with_log_targets",
    "multilabel_cross_entropy",
    "poly_loss_cross_entropy",
    "safe_softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "sigmoid_multilabel_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
]
