"""The categorical costs: a softmax output over a class axis.

Wrappers own validation, ``axis`` and ``where`` handling and the dtype policy, then call one
implementation.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _checks, _options, _stable
from jaxloss._impl import Implementation, publish

_WHERE_DOC = """where: optional boolean mask, optax's meaning: with the shape of the logits it drops
        classes (they get zero probability and a zero gradient); with the batch shape it drops
        examples. A row with nothing kept costs 0."""


def make_softmax_cross_entropy(impl: Implementation) -> Callable[..., jax.Array]:
    """Builds ``softmax_cross_entropy`` for one implementation."""

    def softmax_cross_entropy(
        logits: jax.typing.ArrayLike,
        labels: jax.typing.ArrayLike,
        axis: int | tuple[int, ...] = -1,
        where: jax.typing.ArrayLike | None = None,
        *,
        label_smoothing: float | jax.typing.ArrayLike = 0.0,
        weights: jax.typing.ArrayLike | None = None,
        z_loss: float | jax.typing.ArrayLike = 0.0,
        soft_cap: float | jax.typing.ArrayLike | None = None,
    ) -> jax.Array:
        z, y = _checks.floating_pair(logits, labels, "logits")
        axes = _checks.canonical_axes(axis, z.ndim, "logits")
        options = _options.softmax_options(
            z, axes, label_smoothing=label_smoothing, weights=weights, z_loss=z_loss, soft_cap=soft_cap
        )
        mask = _checks.canonical_where(where, z.shape, axes)
        if mask is not None:
            z = jnp.where(mask, z, -jnp.inf)
            y = jnp.where(mask, y, 0.0)
        if options is None:
            return impl.softmax(z, y, None, axes)
        return impl.softmax_options(z, y, options, axes)

    softmax_cross_entropy.__doc__ = f"""Softmax cross-entropy of logits and (soft) labels.

    .. math::
      \\ell(z, y) = -\\sum_j y_j \\log \\operatorname{{softmax}}(z)_j,
      \\qquad \\frac{{\\partial \\ell}}{{\\partial z}} = a \\sum_p y_p - y

    The article's categorical cost with its softmax output. The seed is the general form: it
    is :math:`a - y` only when the labels sum to one. ``0 log 0 = 0``, so a ``-inf`` logit with
    a zero label is a masked class. {impl.rule}

    Args:
      logits: floating logits with classes along ``axis``.
      labels: per-class target weights, broadcastable with ``logits``.
      axis: the class axis or axes; the article's classes-by-examples layout is ``axis=0``.
      {_WHERE_DOC}
      {_options.SOFTMAX_OPTIONS_DOC}

    Returns:
      The loss of each example: the broadcast shape without ``axis``.
    """
    return publish(softmax_cross_entropy, impl)


def make_safe_softmax_cross_entropy(impl: Implementation) -> Callable[..., jax.Array]:
    """Builds ``safe_softmax_cross_entropy`` for one implementation."""

    def safe_softmax_cross_entropy(logits: jax.typing.ArrayLike, labels: jax.typing.ArrayLike) -> jax.Array:
        z, y = _checks.floating_pair(logits, labels, "logits")
        axes = _checks.canonical_axes(-1, z.ndim, "logits")
        return impl.softmax(z, y, None, axes)

    safe_softmax_cross_entropy.__doc__ = f"""Softmax cross-entropy over the last axis, with ``0 log 0 = 0``.

    optax's name for a softmax cross-entropy that treats ``-inf`` logits with zero labels as
    contributing 0. Every jaxloss softmax cost already does, so this equals
    ``softmax_cross_entropy(logits, labels)``. {impl.rule}

    Args:
      logits: floating logits with classes on the last axis.
      labels: per-class target weights, broadcastable with ``logits``.

    Returns:
      The loss of each example.
    """
    return publish(safe_softmax_cross_entropy, impl)


def _flatten_class_axes(array: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    batch = [d for d in range(array.ndim) if d not in axes]
    moved = jnp.transpose(array, batch + list(axes))
    return moved.reshape((*moved.shape[: len(batch)], -1))


def make_softmax_cross_entropy_with_integer_labels(impl: Implementation) -> Callable[..., jax.Array]:
    """Builds ``softmax_cross_entropy_with_integer_labels`` for one implementation."""

    def softmax_cross_entropy_with_integer_labels(
        logits: jax.typing.ArrayLike,
        labels: jax.typing.ArrayLike,
        axis: int | tuple[int, ...] = -1,
        where: jax.typing.ArrayLike | None = None,
        *,
        label_smoothing: float | jax.typing.ArrayLike = 0.0,
        weights: jax.typing.ArrayLike | None = None,
        ignore_index: int | None = None,
        z_loss: float | jax.typing.ArrayLike = 0.0,
        soft_cap: float | jax.typing.ArrayLike | None = None,
    ) -> jax.Array:
        z = _checks.as_array(logits, "logits")
        _checks.require_floating(z, "logits")
        classes = _checks.as_array(labels, "labels")
        _checks.require_integer(classes, "labels")
        axes = _checks.canonical_axes(axis, z.ndim, "logits")
        mask = _checks.canonical_where(where, z.shape, axes)
        batch_shape = tuple(n for d, n in enumerate(z.shape) if d not in axes)
        try:
            ok = tuple(np.broadcast_shapes(classes.shape, batch_shape)) == batch_shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"`labels` with shape {classes.shape} must broadcast to the batch shape {batch_shape} "
                f"of `logits` with shape {z.shape} and axis {axis!r}."
            )
        if len(axes) > 1:
            z = _flatten_class_axes(z, axes)
            mask = None if mask is None else _flatten_class_axes(mask, axes)
            axes = (z.ndim - 1,)
        z = z.astype(_checks.compute_dtype(z))
        classes = jnp.broadcast_to(classes, batch_shape)
        options = _options.softmax_options(
            z, axes, label_smoothing=label_smoothing, weights=weights, z_loss=z_loss, soft_cap=soft_cap
        )
        if ignore_index is not None:
            _checks.require_python_int(ignore_index, "ignore_index")
            counts = classes != ignore_index
            mask = jnp.expand_dims(counts, axes) if mask is None else mask & jnp.expand_dims(counts, axes)
            classes = jnp.where(counts, classes, 0)  # an ignored row is dead: its label only must not be NaN
        if options is None:
            return impl.softmax_integer(z, classes, mask, axes)
        # With options the labels are one-hot rows, and a class that `where` drops is dropped
        # from the labels too (without options, optax's quirk reads a dropped label's logit).
        y, _ = _stable.integer_labels_as_soft(z, classes, axes, None)
        if mask is not None:
            z = jnp.where(mask, z, -jnp.inf)
            y = jnp.where(mask, y, 0.0)
        return impl.softmax_options(z, y, options, axes)

    softmax_cross_entropy_with_integer_labels.__doc__ = f"""Softmax cross-entropy of logits and integer class labels.

    .. math::
      \\ell(z, l) = \\operatorname{{logsumexp}}(z) - z_l,
      \\qquad \\frac{{\\partial \\ell}}{{\\partial z}} = a - \\operatorname{{onehot}}(l)

    Computed as :math:`(\\max z - z_l) + \\log1p(T)`, where :math:`T` sums the other classes'
    :math:`e^{{z_j - \\max z}}`, and the true-class seed :math:`a_l - 1` as :math:`-\\sum_{{j \\ne l}} a_j`,
    so confident predictions keep their digits. Labels outside ``[0, C)`` give NaN. As in optax,
    ``where`` restricts the normaliser: a label whose class is dropped still reads its logit.
    {impl.rule}

    Args:
      logits: floating logits with classes along ``axis``.
      labels: integer class ids with the batch shape (``logits``' shape without ``axis``). With
        a tuple ``axis``, a label is a flat index into the classes' slice, in C order.
      axis: the class axis, or a tuple of axes.
      {_WHERE_DOC}
      ignore_index: a label value (an int, such as torch's -100) whose examples cost 0 and get a
        zero gradient, as if ``where`` dropped them.
      {_options.SOFTMAX_OPTIONS_DOC} With a tuple ``axis``, ``weights`` has the
        flattened shape ``(C,)``. With any of these four options, a class that ``where`` drops
        is dropped from the one-hot label too.

    Returns:
      The loss of each example, with the batch shape.
    """
    return publish(softmax_cross_entropy_with_integer_labels, impl)


def make_categorical_cross_entropy(impl: Implementation) -> Callable[..., jax.Array]:
    """Builds ``categorical_cross_entropy`` (probability space) for one implementation."""

    def categorical_cross_entropy(
        probs: jax.typing.ArrayLike,
        labels: jax.typing.ArrayLike,
        axis: int | tuple[int, ...] = -1,
        where: jax.typing.ArrayLike | None = None,
    ) -> jax.Array:
        a, y, limits = _checks.probability_pair(probs, labels)
        axes = _checks.canonical_axes(axis, a.ndim, "probs")
        mask = _checks.canonical_where(where, a.shape, axes)
        if mask is not None:
            a = jnp.where(mask, a, 1.0)
            y = jnp.where(mask, y, 0.0)
        return impl.categorical_probs(a, y, limits, axes)

    categorical_cross_entropy.__doc__ = f"""Categorical cross-entropy of probabilities and labels.

    .. math::
      \\ell(a, y) = -\\sum_j y_j \\log a_j,
      \\qquad \\frac{{\\partial \\ell}}{{\\partial a}} = -\\frac{{y}}{{a}}

    The article's J(A, Y) and its seed dJ/dA, per example. ``0 log 0 = 0``. Clamp policy:
    ``a`` is raised to the smallest normal number, so an exact 0 with a positive label gives a
    finite loss and a finite negative seed; values outside [0, 1] give NaN. {impl.rule}

    Args:
      probs: floating probabilities with classes along ``axis``.
      labels: per-class target weights, broadcastable with ``probs``.
      axis: the class axis or axes; the article's layout is ``axis=0``.
      {_WHERE_DOC}

    Returns:
      The loss of each example.
    """
    return publish(categorical_cross_entropy, impl)
