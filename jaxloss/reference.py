"""The article's formulas as plain JAX: the activation, then the cost, differentiated by autodiff.

Same names, signatures, validation and masks as :mod:`jaxloss`, no custom rule. These are the
baseline that the closed-form rules are compared against, including where they fail: the
sigmoid rounds to 0 or 1 once |z| passes about 17 in float32 and the loss turns inf or NaN, and
the softmax overflows once a logit passes about 88.
"""

from jaxloss._api import NAMES, build
from jaxloss._impl import REFERENCE

(
    sigmoid_binary_cross_entropy,
    softmax_cross_entropy,
    softmax_cross_entropy_with_integer_labels,
    safe_softmax_cross_entropy,
    sigmoid_multilabel_cross_entropy,
    binary_cross_entropy,
    categorical_cross_entropy,
    multilabel_cross_entropy,
) = build(REFERENCE)

__all__ = list(NAMES)
