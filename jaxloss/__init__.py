"""jaxloss: the classification costs of "Feedforward Neural Networks in Depth, Part 3", exact and fast.

The costs here have closed-form ``jax.custom_vjp`` rules built from :mod:`jaxloss.seeds`.
:mod:`jaxloss.forward` has the same costs with ``custom_jvp`` rules (for forward mode) and
:mod:`jaxloss.reference` the article's literal formulas, differentiated by autodiff. The
logit-space names, arguments and per-example outputs are those of ``optax.losses``.
"""

from jaxloss import forward as forward
from jaxloss import reference as reference
from jaxloss import seeds as seeds
from jaxloss import sharded as sharded
from jaxloss._api import NAMES, build
from jaxloss._impl import RULES
from jaxloss._reductions import mean as mean
from jaxloss.linear import linear_cross_entropy as linear_cross_entropy

__version__ = "0.1.0"

(
    sigmoid_binary_cross_entropy,
    softmax_cross_entropy,
    softmax_cross_entropy_with_integer_labels,
    safe_softmax_cross_entropy,
    sigmoid_multilabel_cross_entropy,
    binary_cross_entropy,
    categorical_cross_entropy,
    multilabel_cross_entropy,
) = build(RULES)

__all__ = [*NAMES, "forward", "linear_cross_entropy", "mean", "reference", "seeds", "sharded"]
