"""jaxloss: the classification costs of "Feedforward Neural Networks in Depth, Part 3", exact and fast.

The costs here have closed-form ``jax.custom_vjp`` rules built from the seeds of
:mod:`jaxloss.seeds`. :mod:`jaxloss.forward` has the same costs with ``custom_jvp`` rules (for
forward mode) and :mod:`jaxloss.reference` the article's literal formulas, differentiated by
autodiff. The logit-space names, arguments and per-example outputs are those of ``optax.losses``.
"""

from importlib import metadata as _metadata

from jaxloss import forward as forward
from jaxloss import grad_norms as grad_norms
from jaxloss import reference as reference
from jaxloss import seeds as seeds
from jaxloss import sharded as sharded
from jaxloss._divergence import kl_divergence as kl_divergence
from jaxloss._divergence import kl_divergence_with_log_targets as kl_divergence_with_log_targets
from jaxloss._linear import TokenStats as TokenStats
from jaxloss._linear import linear_cross_entropy as linear_cross_entropy
from jaxloss._probability import binary_cross_entropy as binary_cross_entropy
from jaxloss._probability import categorical_cross_entropy as categorical_cross_entropy
from jaxloss._probability import multilabel_cross_entropy as multilabel_cross_entropy
from jaxloss._reductions import mean as mean
from jaxloss._sigmoid import sigmoid_binary_cross_entropy as sigmoid_binary_cross_entropy
from jaxloss._sigmoid import sigmoid_focal_loss as sigmoid_focal_loss
from jaxloss._sigmoid import sigmoid_multilabel_cross_entropy as sigmoid_multilabel_cross_entropy
from jaxloss._softmax import poly_loss_cross_entropy as poly_loss_cross_entropy
from jaxloss._softmax import safe_softmax_cross_entropy as safe_softmax_cross_entropy
from jaxloss._softmax import softmax_cross_entropy as softmax_cross_entropy
from jaxloss._softmax import softmax_cross_entropy_with_integer_labels as softmax_cross_entropy_with_integer_labels

try:  # written once, in pyproject.toml
    __version__ = _metadata.version("jaxloss")
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "TokenStats",
    "binary_cross_entropy",
    "categorical_cross_entropy",
    "forward",
    "grad_norms",
    "kl_divergence",
    "kl_divergence_with_log_targets",
    "linear_cross_entropy",
    "mean",
    "multilabel_cross_entropy",
    "poly_loss_cross_entropy",
    "reference",
    "safe_softmax_cross_entropy",
    "seeds",
    "sharded",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "sigmoid_multilabel_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
]
