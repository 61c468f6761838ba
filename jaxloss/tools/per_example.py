"""``jaxloss bench --per-example``: per-example gradient norms and clipping, side by side with ``vmap(grad)``.

Three tables, each from programs timed interleaved in one run on the backend JAX sees (medians),
with XLA's temporaries (``memory_analysis``):

1. ``jaxloss.grad_norms.softmax_cross_entropy_with_integer_labels`` against the norm of
   ``jax.vmap(jax.grad(cost))``, the per-example gradients written out;
2. the fused head's per-example norms (``TokenStats.grad_norm``) and its clipped gradient
   (``clip_norm``) against ``vmap(grad)`` of the unfused head, at a size where ``vmap`` fits;
3. the fused head's step with norms, and with clipping, against its plain step
   (value_and_grad of the mean for the hidden states and the weight); each with tokens as the
   examples, and with sequences of 128 tokens as the examples (``segment_ids``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

import jaxloss
from jaxloss import grad_norms
from jaxloss.tools.bench import _compile, _time_interleaved

NORM_SIZES = ((1024, 1000), (4096, 32768))
NORM_SIZES_QUICK = ((1024, 1000),)
HEAD_VMAP = (128, 64, 4096)  # tokens, width, vocabulary: vmap's per-example gradients are N D V floats
STEP = (2048, 512, 32768)
STEP_QUICK = (512, 256, 8192)
CLIP = 1.0
SEGMENT = 128  # tokens per example in the step's segment rows


Programs = dict[str, tuple[Callable[..., Any], tuple[Any, ...]]]


def _timed(programs: Programs, repeats: int) -> list[tuple[str, float, float]]:
    """(name, median ms, temporaries MiB) of each program, compiled first and then timed interleaved."""
    compiled: dict[str, tuple[Any, tuple[Any, ...]]] = {}
    temps: dict[str, float] = {}
    for name, (fn, args) in programs.items():
        program, temp = _compile(fn, *args)
        compiled[name] = (program, args)
        temps[name] = temp / 2**20
        jax.block_until_ready(program(*args))
    runs: dict[str, Callable[[], Any]] = {name: functools.partial(p, *a) for name, (p, a) in compiled.items()}
    times = _time_interleaved(runs, repeats)
    return [(name, times[name], temps[name]) for name in programs]


def _table(title: str, rows: Sequence[tuple[str, float, float]], base: str) -> str:
    """The rows, each time also as a multiple of ``base``'s (over 1: slower)."""
    reference = {name: ms for name, ms, _ in rows}[base]
    lines = [title] if title else []
    lines.append(f"  {'program':42s} {'ms':>10s} {'time / base':>12s} {'temp MiB':>10s}")
    for name, ms, temp in rows:
        lines.append(f"  {name:42s} {ms:10.2f} {ms / reference:12.3f} {temp:10.1f}")
    return "\n".join(lines)


def norm_programs(rows: int, classes: int) -> Programs:
    """The EL2N score of each row: ``grad_norms`` against ``vmap(grad)`` and a norm."""
    logits = 3.0 * jax.random.normal(jax.random.key(0), (rows, classes))
    labels = jax.random.randint(jax.random.key(1), (rows,), 0, classes)

    def closed_form(z: jax.Array, y: jax.Array) -> jax.Array:
        return grad_norms.softmax_cross_entropy_with_integer_labels(z, y)

    def vmapped(z: jax.Array, y: jax.Array) -> jax.Array:
        grads = jax.vmap(jax.grad(jaxloss.softmax_cross_entropy_with_integer_labels))(z, y)
        return jnp.linalg.norm(grads, axis=-1)

    return {"grad_norms": (closed_form, (logits, labels)), "vmap(grad), norm": (vmapped, (logits, labels))}


def _head(rows: int, dim: int, vocab: int, dtype: Any = jnp.float32) -> tuple[jax.Array, jax.Array, jax.Array]:
    keys = jax.random.split(jax.random.key(2), 3)
    hidden = jax.random.normal(keys[0], (rows, dim), dtype)
    weight = (jax.random.normal(keys[1], (dim, vocab), jnp.float32) / jnp.sqrt(dim)).astype(dtype)
    return hidden, weight, jax.random.randint(keys[2], (rows,), 0, vocab)


def head_programs(rows: int, dim: int, vocab: int) -> Programs:
    """Per-example norms and the clipped gradient of the output layer's weight: fused against ``vmap(grad)``."""
    args = _head(rows, dim, vocab)

    def per_example(h: jax.Array, w: jax.Array, y: jax.Array) -> jax.Array:
        def one(hi: jax.Array, yi: jax.Array) -> jax.Array:
            return jax.grad(lambda w: jaxloss.softmax_cross_entropy_with_integer_labels((hi[None] @ w)[0], yi))(w)

        return jax.vmap(one)(h, y)

    def vmap_norms(h: jax.Array, w: jax.Array, y: jax.Array) -> jax.Array:
        return jnp.sqrt(jnp.sum(per_example(h, w, y) ** 2, axis=(1, 2)))

    def vmap_clipped(h: jax.Array, w: jax.Array, y: jax.Array) -> jax.Array:
        grads = per_example(h, w, y)
        norms = jnp.sqrt(jnp.sum(grads**2, axis=(1, 2)))
        return jnp.tensordot(jnp.minimum(1.0, CLIP / norms), grads, axes=1)

    def fused_norms(h: jax.Array, w: jax.Array, y: jax.Array) -> jax.Array:
        return jaxloss.linear_cross_entropy(h, w, y, return_stats=True)[1].grad_norm

    def fused_clipped(h: jax.Array, w: jax.Array, y: jax.Array) -> jax.Array:
        return jax.grad(lambda w: jaxloss.linear_cross_entropy(h, w, y, reduction="sum", clip_norm=CLIP))(w)

    return {
        "fused norms (TokenStats.grad_norm)": (fused_norms, args),
        "vmap(grad) norms": (vmap_norms, args),
        "fused clipped gradient (clip_norm)": (fused_clipped, args),
        "vmap(grad), clipped and summed": (vmap_clipped, args),
    }


def step_programs(rows: int, dim: int, vocab: int) -> Programs:
    """The fused head's value_and_grad of the mean, plain, with its norms, and clipped; per token
    and per sequence of :data:`SEGMENT` tokens."""
    args = _head(rows, dim, vocab)
    length = min(SEGMENT, rows)
    ids = jnp.zeros((rows // length, length), jnp.int32)  # one example per sequence

    def sequences(h: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
        return h.reshape(-1, length, h.shape[-1]), y.reshape(-1, length)

    def segment_norms(h: jax.Array, w: jax.Array, y: jax.Array) -> Any:
        def loss(h: jax.Array, w: jax.Array) -> tuple[jax.Array, jax.Array]:
            hs, ys = sequences(h, y)
            value, stats = jaxloss.linear_cross_entropy(hs, w, ys, reduction="mean", return_stats=True, segment_ids=ids)
            return value, stats.grad_norm

        return jax.value_and_grad(loss, (0, 1), has_aux=True)(h, w)

    def segments_clipped(h: jax.Array, w: jax.Array, y: jax.Array) -> Any:
        def loss(h: jax.Array, w: jax.Array) -> jax.Array:
            hs, ys = sequences(h, y)
            return jaxloss.linear_cross_entropy(hs, w, ys, reduction="mean", clip_norm=CLIP, segment_ids=ids)

        return jax.value_and_grad(loss, (0, 1))(h, w)

    def plain(h: jax.Array, w: jax.Array, y: jax.Array) -> Any:
        return jax.value_and_grad(lambda h, w: jaxloss.linear_cross_entropy(h, w, y, reduction="mean"), (0, 1))(h, w)

    def with_norms(h: jax.Array, w: jax.Array, y: jax.Array) -> Any:
        def loss(h: jax.Array, w: jax.Array) -> tuple[jax.Array, jax.Array]:
            value, stats = jaxloss.linear_cross_entropy(h, w, y, reduction="mean", return_stats=True)
            return value, stats.grad_norm

        return jax.value_and_grad(loss, (0, 1), has_aux=True)(h, w)

    def clipped(h: jax.Array, w: jax.Array, y: jax.Array) -> Any:
        return jax.value_and_grad(
            lambda h, w: jaxloss.linear_cross_entropy(h, w, y, reduction="mean", clip_norm=CLIP), (0, 1)
        )(h, w)

    return {
        "plain step": (plain, args),
        "step + norms": (with_norms, args),
        "step, clipped": (clipped, args),
        f"step + norms, segments of {length}": (segment_norms, args),
        f"step, clipped, segments of {length}": (segments_clipped, args),
    }


def run(
    quick: bool,
    repeats: int,
    norm_sizes: Sequence[tuple[int, int]] | None = None,
    head: tuple[int, int, int] = HEAD_VMAP,
    step: tuple[int, int, int] | None = None,
) -> str:
    """The three tables as text."""
    device = jax.devices()[0]
    out = [
        f"jaxloss bench --per-example on {device.platform} ({device.device_kind}), "
        f"medians of {repeats} interleaved runs; time / base: over 1 is slower than the base (the first named)"
    ]
    for rows, classes in norm_sizes or (NORM_SIZES_QUICK if quick else NORM_SIZES):
        rows_ = _timed(norm_programs(rows, classes), repeats)
        out.append(_table(f"EL2N scores (integer labels), {rows}x{classes} float32:", rows_, "vmap(grad), norm"))
    timed = _timed(head_programs(*head), repeats)
    title = f"output layer, N={head[0]}, D={head[1]}, V={head[2]} float32, per-example gradients of the weight:"
    out.append(_table(title, timed[:2], "vmap(grad) norms"))
    out.append(_table("", timed[2:], "vmap(grad), clipped and summed"))
    size = step or (STEP_QUICK if quick else STEP)
    timed = _timed(step_programs(*size), repeats)
    out.append(_table(f"the fused head's step, N={size[0]}, D={size[1]}, V={size[2]} float32:", timed, "plain step"))
    return "\n".join(out)
