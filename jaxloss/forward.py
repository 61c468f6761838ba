"""The jaxloss costs with closed-form ``jax.custom_jvp`` rules.

Same names, signatures and values as :mod:`jaxloss`, built from the same seeds. Use it where
forward mode is needed: ``jax.jvp``, ``jax.jacfwd``, or ``check_grads`` in both modes. In reverse
mode it saves the seed (an array the size of the logits) as a residual, where the
``custom_vjp`` rules of :mod:`jaxloss` recompute it, so prefer :mod:`jaxloss` for training.
"""

from jaxloss._api import NAMES, build
from jaxloss._impl import FORWARD

(
    sigmoid_binary_cross_entropy,
    softmax_cross_entropy,
    softmax_cross_entropy_with_integer_labels,
    safe_softmax_cross_entropy,
    sigmoid_multilabel_cross_entropy,
    binary_cross_entropy,
    categorical_cross_entropy,
    multilabel_cross_entropy,
) = build(FORWARD)

__all__ = list(NAMES)
