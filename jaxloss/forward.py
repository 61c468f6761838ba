"""The jaxloss costs with closed-form ``jax.custom_jvp`` rules.

Same names, signatures, checks and values as :mod:`jaxloss`, built from the same seeds. Use it
where forward mode is needed: ``jax.jvp``, ``jax.jacfwd``, or ``check_grads`` in both modes. In
reverse mode it saves the seed (an array the size of the logits) as a residual, where the
``custom_vjp`` rules of :mod:`jaxloss` recompute it, so prefer :mod:`jaxloss` for training.
"""

from jaxloss import _divergence, _probability, _rules, _sigmoid, _softmax

# Each twin has its cost's signature (``_rules.in_namespace`` is typed with a ParamSpec), so
# editors, ``inspect.signature`` and mypy see the arguments; go-to-definition on the second
# argument reaches the cost.
sigmoid_binary_cross_entropy = _rules.in_namespace(_sigmoid.sigmoid_binary_cross_entropy, _rules.JVP)
sigmoid_multilabel_cross_entropy = _rules.in_namespace(_sigmoid.sigmoid_multilabel_cross_entropy, _rules.JVP)
softmax_cross_entropy = _rules.in_namespace(_softmax.softmax_cross_entropy, _rules.JVP)
safe_softmax_cross_entropy = _rules.in_namespace(_softmax.safe_softmax_cross_entropy, _rules.JVP)
softmax_cross_entropy_with_integer_labels = _rules.in_namespace(
    _softmax.softmax_cross_entropy_with_integer_labels, _rules.JVP
)
binary_cross_entropy = _rules.in_namespace(_probability.binary_cross_entropy, _rules.JVP)
categorical_cross_entropy = _rules.in_namespace(_probability.categorical_cross_entropy, _rules.JVP)
multilabel_cross_entropy = _rules.in_namespace(_probability.multilabel_cross_entropy, _rules.JVP)
sigmoid_focal_loss = _rules.in_namespace(_sigmoid.sigmoid_focal_loss, _rules.JVP)
poly_loss_cross_entropy = _rules.in_namespace(_softmax.poly_loss_cross_entropy, _rules.JVP)
kl_divergence = _rules.in_namespace(_divergence.kl_divergence, _rules.JVP)
kl_divergence_with_log_targets = _rules.in_namespace(_divergence.kl_divergence_with_log_targets, _rules.JVP)

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
