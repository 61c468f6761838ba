"""The jaxloss costs with closed-form ``jax.custom_jvp`` rules.

Same names, signatures, checks and values as :mod:`jaxloss`, built from the same seeds. Use it
where forward mode is needed: ``jax.jvp``, ``jax.jacfwd``, or ``check_grads`` in both modes. In
reverse mode it saves the seed (an array the size of the logits) as a residual, where the
``custom_vjp`` rules of :mod:`jaxloss` recompute it, so prefer :mod:`jaxloss` for training.
"""

from jaxloss import _costs, _rules

_TWINS = _costs.twins(_rules.JVP)

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
