"""Helpers for code that runs inside ``jax.shard_map``: what a value's type says of the mesh.

The sharded costs (:mod:`jaxloss.sharded`) and the fused output layer's rules, which run inside
``shard_map`` when called from there, read from here which mesh axes an array varies over, and
sum a cotangent over the axes its primal is replicated on.
"""

from __future__ import annotations

import jax


def split_along(array: jax.Array, axis: int) -> bool:
    """Whether ``array``'s type says that ``axis`` is split over mesh axes (explicit sharding).

    The full-logit integer-label cost then reads the label's logit as a masked sum, which each
    device reduces locally, instead of a gather, which would collect the logits first.
    """
    spec = getattr(getattr(jax.typeof(array), "sharding", None), "spec", None)
    return spec is not None and len(spec) > axis and spec[axis] is not None


def varying_axes(array: jax.Array) -> frozenset[str]:
    """The mesh axes over which ``array`` varies inside ``shard_map`` (none outside it)."""
    kind = getattr(jax.typeof(array), "manual_axis_type", None)
    if kind is None:  # older JAX
        return frozenset(getattr(jax.typeof(array), "vma", frozenset()))
    return frozenset(kind.varying)


def summed_like(cotangent: jax.Array, primal: jax.Array) -> jax.Array:
    """The cotangent of ``primal``, summed over the mesh axes it varies over and ``primal`` does not.

    Inside ``shard_map``, an input that is the same on every device of an axis (a weight
    replicated over the data axis, hidden states replicated over the vocabulary axis) is used on
    each of them, so its gradient is the sum of theirs. Outside ``shard_map`` this is the
    identity.
    """
    extra = tuple(sorted(varying_axes(cotangent) - varying_axes(primal)))
    return jax.lax.psum(cotangent, extra) if extra else cotangent
