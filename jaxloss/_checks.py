"""Argument validation shared by every cost: errors at trace time, naming the argument."""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp
import numpy as np

Axes = tuple[int, ...]


def as_array(value: jax.typing.ArrayLike, name: str) -> jax.Array:
    """Converts ``value`` to an array, or raises ``TypeError`` naming it."""
    if value is None:
        raise TypeError(f"`{name}` must be an array, got None.")
    try:
        return jnp.asarray(value)
    except TypeError as err:
        raise TypeError(f"`{name}` must be an array, got {type(value).__name__}.") from err


def require_floating(array: jax.Array, name: str) -> None:
    """Raises ``TypeError`` unless ``array`` has a floating dtype."""
    if not jnp.issubdtype(array.dtype, jnp.floating):
        raise TypeError(f"`{name}` must have a floating dtype, got {array.dtype} with shape {array.shape}.")


def require_integer(array: jax.Array, name: str) -> None:
    """Raises ``TypeError`` unless ``array`` has an integer dtype (bool is not an integer)."""
    if not jnp.issubdtype(array.dtype, jnp.integer):
        raise TypeError(f"`{name}` must have an integer dtype, got {array.dtype} with shape {array.shape}.")


def class_ids(labels: jax.typing.ArrayLike, name: str = "labels") -> jax.Array:
    """Integer class labels as int32 (int64 under x64 when they are 64-bit), or ``TypeError``.

    The costs compare labels with class indices and count classes in the labels' dtype, so a
    narrow dtype would wrap: a uint8 label with 259 classes. Labels are widened first. A
    concrete 64-bit label outside the int32 range without x64 becomes -1, outside every class
    (so it gives NaN, the convention for labels out of range) instead of wrapping to a valid one.
    """
    if isinstance(labels, (np.ndarray, np.generic, int, list, tuple)) and not isinstance(labels, bool):
        host = np.asarray(labels)
        if host.dtype.kind in "iu" and host.dtype.itemsize >= 4 and not jax.config.read("jax_enable_x64"):
            info = np.iinfo(np.int32)
            labels = np.where((host < info.min) | (host > info.max), -1, host).astype(np.int32)
    ids = as_array(labels, name)
    require_integer(ids, name)
    wide = jnp.dtype(jnp.int64) if ids.dtype.itemsize == 8 or ids.dtype == jnp.uint32 else jnp.dtype(jnp.int32)
    if not jax.config.read("jax_enable_x64"):
        wide = jnp.dtype(jnp.int32)
    return ids.astype(wide)


def require_label_value(value: object, ids: jax.Array, name: str) -> None:
    """Raises unless ``value`` is a Python int that the labels ``ids`` (from :func:`class_ids`) can hold."""
    require_python_int(value, name)
    bounds = np.iinfo(ids.dtype)
    if not bounds.min <= int(value) <= bounds.max:  # type: ignore[call-overload]
        raise ValueError(
            f"`{name}` {value} is outside the range of the labels' dtype {ids.dtype} (labels with shape {ids.shape})."
        )


def require_real(array: jax.Array, name: str) -> None:
    """Raises ``TypeError`` for complex or non-numeric labels."""
    if not (
        jnp.issubdtype(array.dtype, jnp.floating)
        or jnp.issubdtype(array.dtype, jnp.integer)
        or array.dtype == jnp.bool_
    ):
        raise TypeError(f"`{name}` must be real numbers, got {array.dtype} with shape {array.shape}.")


def require_python_int(value: object, name: str) -> None:
    """Raises ``TypeError`` unless ``value`` is a Python (or NumPy) integer, not an array or a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int, got {type(value).__name__} {value!r}.")


def canonical_axes(axis: int | tuple[int, ...] | None, ndim: int, name: str) -> Axes:
    """Normalises an int or tuple ``axis`` of an ``ndim``-dimensional ``name`` to non-negative ints.

    ``None`` is every axis, as in optax. The order is kept: a tuple ``axis`` of the integer-label
    cost flattens the class axes in the order given, as optax does.
    """
    if axis is None:
        axis = tuple(range(ndim))
    raw = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    axes = []
    for a in raw:
        try:
            index = operator.index(a)
        except TypeError as err:
            raise TypeError(f"`axis` must be an int or a tuple of ints, got {axis!r}.") from err
        if not -ndim <= index < ndim:
            raise ValueError(f"`axis` {axis!r} is out of range for `{name}` with {ndim} dimensions.")
        axes.append(index % ndim)
    if not axes:
        raise ValueError(f"`axis` must name at least one axis of `{name}`, got {axis!r}.")
    if len(set(axes)) != len(axes):
        raise ValueError(f"`axis` {axis!r} repeats an axis of `{name}`.")
    return tuple(axes)


def require_classes(array: jax.Array, axes: Axes, name: str) -> None:
    """Raises ``ValueError`` when the class ``axes`` of ``name`` hold no class: a softmax needs one."""
    if any(array.shape[a] == 0 for a in axes):
        raise ValueError(f"`{name}` with shape {array.shape} has no classes along axis {axes}: a softmax needs one.")


def broadcast_shape(
    first: jax.typing.ArrayLike, second: jax.typing.ArrayLike, names: tuple[str, str]
) -> tuple[int, ...]:
    """The broadcast shape of two arrays, or a ``ValueError`` naming both shapes."""
    try:
        return tuple(np.broadcast_shapes(np.shape(first), np.shape(second)))
    except ValueError:
        raise ValueError(
            f"`{names[0]}` with shape {np.shape(first)} and `{names[1]}` with shape {np.shape(second)} "
            "do not broadcast together."
        ) from None


def boolean_mask(where: jax.typing.ArrayLike, name: str = "where") -> jax.Array:
    """``where`` as a boolean array; integers count as true where non-zero, anything else is a ``TypeError``.

    The one dtype rule for every ``where`` of the package: the costs, ``mean``,
    ``linear_cross_entropy`` and the sharded costs.
    """
    mask = as_array(where, name)
    if not (mask.dtype == jnp.bool_ or jnp.issubdtype(mask.dtype, jnp.integer)):
        raise TypeError(f"`{name}` must be a boolean (or integer) mask, got {mask.dtype} with shape {mask.shape}.")
    return mask.astype(bool)


def canonical_where(where: jax.typing.ArrayLike | None, shape: tuple[int, ...], axes: Axes) -> jax.Array | None:
    """Turns ``where`` into a boolean mask of ``shape``.

    As in optax, a mask with the batch shape (the class axes removed) selects examples: it is
    expanded along ``axes``. A mask with the full number of dimensions selects elements.
    """
    if where is None:
        return None
    mask = boolean_mask(where)
    if mask.ndim == len(shape) - len(axes) and axes:
        mask = jnp.expand_dims(mask, axes)
    try:
        np.broadcast_shapes(mask.shape, shape)
        mask = jnp.broadcast_to(mask, shape)
    except ValueError:
        raise ValueError(f"`where` with shape {jnp.shape(where)} does not broadcast to shape {shape}.") from None
    return mask.astype(bool)


def compute_dtype(*arrays: jax.Array) -> jnp.dtype:
    """The dtype the costs compute in: the widest floating input, and at least float32."""
    floats = [a.dtype for a in arrays if jnp.issubdtype(a.dtype, jnp.floating)]
    dtype = jnp.dtype(jnp.float32)
    for f in floats:
        if jnp.finfo(f).bits > jnp.finfo(dtype).bits:
            dtype = jnp.dtype(f)
    return dtype


def floating_pair(
    inputs: jax.typing.ArrayLike, labels: jax.typing.ArrayLike, input_name: str, labels_name: str = "labels"
) -> tuple[jax.Array, jax.Array]:
    """Validates a floating input and real labels, broadcasts them and casts to the compute dtype.

    float16 and bfloat16 are computed in float32; the cast's transpose returns gradients in the
    input's own dtype.
    """
    x = as_array(inputs, input_name)
    require_floating(x, input_name)
    y = as_array(labels, labels_name)
    require_real(y, labels_name)
    shape = broadcast_shape(x, y, (input_name, labels_name))
    dtype = compute_dtype(x, y)
    return jnp.broadcast_to(x.astype(dtype), shape), jnp.broadcast_to(y.astype(dtype), shape)
