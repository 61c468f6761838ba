"""The fused output layer's block plan: which rule, and how many classes or rows per block, per platform.

:func:`plan_blocks` is the one function that sizes the blocks; :func:`planned` puts each
platform's plan in the program lowered for it. The rules themselves are in
``_vocabulary`` (blocks of classes, per example) and ``_rows`` (blocks of rows, reduced).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxloss import _backend

TARGET_BLOCK_BYTES = 4 * 2**20  # one block of logits: about 4 MiB


def block_columns(rows: int, vocab: int, itemsize: int, block_size: int | None) -> int:
    """The block width: ``block_size``, or about 4 MiB of logits, a multiple of 128 where it can be."""
    if block_size is not None:
        return max(1, min(int(block_size), vocab))
    columns = max(1, TARGET_BLOCK_BYTES // max(1, rows * itemsize))
    if columns >= 128:
        columns -= columns % 128
    return max(1, min(columns, vocab))


REDUCED_BLOCK_BYTES = 32 * 2**20  # one block of rows' logits, with a reduction: at most 32 MiB


MAX_BLOCK_ROWS = 256  # and at most 256 rows: more adds memory, not speed (below)


def block_rows(rows: int, vocab: int, itemsize: int, block_size: int | None) -> int:
    """Rows per block of the reduced rule: 256, at most 32 MiB of logits, or as many logits as ``block_size`` columns.

    Every block adds its product :math:`h_B^\\top g` into the (D, V) float32 accumulator, so
    the accumulator is read and written N/rows times; blocks of a few rows make that traffic
    dominate. Measured at N=2048, D=512, V=32768 float32 (value_and_grad, one run, against
    optax's unfused cost): 64 rows per block 1.08x, 128 rows 1.31x, 256 rows (32 MiB) 1.53x,
    512 rows 1.50x; 32 rows (4 MiB, the per-example rule's block) 0.64x. Beyond 256 rows
    only the memory grows: at N=4096, D=512, V=4096, blocks of 2048 rows (32 MiB) took 104 MiB of
    temporaries, more than the unfused cost's 64 MiB.
    """
    if block_size is not None:
        return max(1, min(rows, rows * min(int(block_size), vocab) // max(1, vocab)))
    return max(1, min(rows, MAX_BLOCK_ROWS, REDUCED_BLOCK_BYTES // (itemsize * max(1, vocab))))


class BlockPlan(NamedTuple):
    """How the fused cost walks the logits: a rule, and its block.

    Attributes:
      rule: ``"vocabulary"``: blocks of ``width`` classes over all rows, four matrix products
        (the per-example rule; with a reduction, it is reduced afterwards); ``"rows"``: blocks of
        ``height`` rows over all classes, three products, the gradients formed in the forward
        pass into a float32 ``(D, V)`` accumulator (reductions only).
      width: classes per block of the vocabulary rule (and of the forward pass without a gradient).
      height: rows per block of the rows rule.
      rounded: the vocabulary rule's blocks of the weight's gradient are each rounded to the
        weight's dtype as they are written (accelerators: no float32 ``(D, V)`` array is kept);
        False keeps them in the compute dtype and rounds the whole gradient once at the end
        (XLA-CPU, where writing a bfloat16 block into a bfloat16 array is slow: :func:`plan_blocks`).
        Either way each element is rounded once, from its complete float32 sum.
    """

    rule: str
    width: int
    height: int
    rounded: bool = True


ACCELERATOR_BLOCK_BYTES = {"none": 2 * 2**30, "reduced": 3 * 2**30}
"""On an accelerator, the most one block may take at its peak (:func:`plan_blocks`): its float32 logits and its seed.

Measured on one H200 (jax 0.11.2; value_and_grad of the mean for hidden and weight, bfloat16,
N=8192, D=4096, V=128256, against optax's unfused step at 73.4 ms; ``shared/gpu/sweep*.jsonl``):
the time falls with the number of blocks, whatever their size. Per example, 8 vocabulary blocks
ran at 1.41x, 4 at 1.50x and 2 at 1.74x; with a reduction, 126 row blocks (the CPU's plan) at
0.24x, 4 at 1.22x and 2 at 1.81x, and the rows rule keeps a float32 (D, V) accumulator
beside its block. So each block is as large as a budget allows, and the budgets are the
issue's memory targets for that size less the rest of the program: 2 GiB per example (3 blocks
of 42752 classes, 6 bytes a logit; target at most 3 GiB of temporaries), 3 GiB with a reduction
(2 blocks of 64128; target at most 4 GiB).
"""


ACCELERATOR_MEMORY_SHARE = 16
"""And at most this share of the device's memory (``memory_stats()["bytes_limit"]``): 1 GiB on a 16 GiB card."""


def device_memory() -> int | None:
    """The memory of this process's first device in bytes, or None where it reports none (XLA-CPU).

    ``jax.local_devices()[0].memory_stats()["bytes_limit"]``: what XLA's allocator may take
    there. A program compiled here for another machine's device (``jaxloss.tools.accelerators``)
    gets None, and with it the budgets of :data:`ACCELERATOR_BLOCK_BYTES` alone.
    """
    try:
        stats = jax.local_devices()[0].memory_stats()
    except Exception:  # a backend without the query
        return None
    limit = None if not stats else stats.get("bytes_limit")
    return int(limit) if limit else None


def planned(run: Callable[..., Any], operands: Any, plan: Callable[..., BlockPlan]) -> Any:
    """``run(operands, blocks)``, with each platform's plan in the program lowered for it.

    ``plan(platform=..., memory=...)`` gives the plans (:func:`plan_blocks`). Where XLA-CPU's
    and the accelerators' differ, ``jax.lax.platform_dependent`` holds both and the program
    lowered for a platform keeps its own (so a program compiled here for an H200 has the H200's
    blocks); under ``JAXLOSS_PORTABLE=1`` every platform gets the accelerators' plan.
    """
    on_cpu, on_accelerators = plan(platform="cpu"), plan(platform="accelerator", memory=device_memory())
    if _backend.PORTABLE or on_cpu == on_accelerators:
        return run(operands, on_accelerators)
    return jax.lax.platform_dependent(
        operands,
        cpu=functools.partial(run, blocks=on_cpu),
        default=functools.partial(run, blocks=on_accelerators),
    )


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _even_columns(vocab: int, most: int) -> int:
    """The fewest blocks of at most ``most`` classes (a multiple of 128 where it can be), as even as they can be."""
    if most >= vocab:
        return vocab
    most = max(1, most)
    if most >= 128:
        most -= most % 128
    blocks = -(-vocab // most)
    width = -(-vocab // blocks)
    if most >= 128:
        width = min(_round_up(width, 128), most)
    return min(width, vocab)


def plan_blocks(
    rows: int,
    dim: int,
    vocab: int,
    *,
    operand: Any,
    compute: Any,
    reduction: str,
    platform: str,
    memory: int | None = None,
    block_size: int | None = None,
    length: int = 1,
) -> BlockPlan:
    """The fused cost's blocks, for one platform: the one function that sizes them.

    * ``block_size`` given: the same blocks on every platform. Classes per block, and with a
      reduction the rows rule with as many logits per block of rows.
    * XLA-CPU (``platform="cpu"``): blocks sized for its caches. About 4 MiB of logits per
      vocabulary block (:func:`block_columns`); with a reduction, the rows rule with 256 rows
      per block, at most 32 MiB (:func:`block_rows`, which has the measurements). The weight's
      gradient stays in the compute dtype until the last block (``rounded=False``): there,
      writing each bfloat16 block into a bfloat16 gradient made value_and_grad of the
      per-example cost 1.45x slower (N=2048, D=512, V=32768, bfloat16, jax 0.10.2, 2 cores:
      2312 ms against 1594 ms, optax 1620 ms; float32 alike either way).
    * An accelerator (any other platform): the fewest blocks within a budget
      (:data:`ACCELERATOR_BLOCK_BYTES`, and at most 1/:data:`ACCELERATOR_MEMORY_SHARE` of
      ``memory``). With a reduction, the rows rule in one block (no loop: three products) when
      its float32 logits, its seed in the operands' dtype and the float32 ``(D, V)`` gradient
      fit. Otherwise the vocabulary rule, whose blocks of the weight's gradient are each
      complete and rounded once to the weight's dtype, so that no ``(D, V)`` float32
      accumulator is kept: one block of every class when its logits and seed fit (its
      gradient is the result, written in the weight's dtype), else blocks within the budget
      for a block's peak in the loop: its logits and seed, or its seed and its float32 product
      for the weight's gradient (``D`` by the block), which XLA-GPU writes out before it is
      rounded into the gradient, whichever is larger. Compiled for an H200 (bfloat16, the
      per-example cost, jax 0.10.2): N=2048, D=4096, V=128256 in 1, 2 and 3 blocks held 0.49,
      1.25 and 0.85 GiB; N=4096, D=8192, V=256000 in 3, 4 and 5 blocks 4.81, 2.57 and
      2.08 GiB, optax 3.91 GiB.

    Args:
      rows: examples N.
      dim: hidden width D.
      vocab: classes V (on this device).
      operand: the matrix products' operand dtype (``product_dtype``).
      compute: the compute dtype (float32, or float64).
      reduction: ``"none"``, ``"mean"`` or ``"sum"``.
      platform: ``"cpu"``, or an accelerator's platform (``"cuda"``, ``"rocm"``, ``"tpu"``).
      memory: the device's memory in bytes (:func:`device_memory`), or None.
      block_size: the caller's override, or None.
      length: tokens per sequence that a block of rows must hold whole (``segment_ids``): the
        rows rule's blocks are a multiple of it, and where not one sequence fits, the vocabulary
        rule serves the reduction.

    Returns:
      A :class:`BlockPlan`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss._plan import plan_blocks
      >>> plan_blocks(8192, 4096, 128256, operand=jnp.bfloat16, compute=jnp.float32,
      ...             reduction="mean", platform="cuda")
      BlockPlan(rule='vocabulary', width=64128, height=8192, rounded=True)
    """
    itemsize = jnp.dtype(compute).itemsize
    reduced = reduction != "none"
    if block_size is not None or platform == "cpu":
        width = block_columns(rows, vocab, itemsize, block_size)
        rounded = platform != "cpu"
        height = block_rows(rows, vocab, itemsize, block_size)
        height -= height % length
        if not reduced or not height:
            return BlockPlan("vocabulary", width, rows, rounded)
        return BlockPlan("rows", width, height, rounded)
    budget = ACCELERATOR_BLOCK_BYTES["reduced" if reduced else "none"]
    if memory:
        budget = min(budget, memory // ACCELERATOR_MEMORY_SHARE)
    seed = jnp.dtype(operand).itemsize
    if reduced and rows * vocab * (itemsize + seed) + dim * vocab * itemsize <= budget:
        return BlockPlan("rows", vocab, rows)
    if rows * vocab * (itemsize + seed) <= budget:
        # One block, no loop: its weight's gradient is the result, which XLA-GPU writes from the
        # product in the weight's dtype.
        return BlockPlan("vocabulary", vocab, rows)
    # In a loop, a block's peak, per class: its logits and its seed, or its seed and its column
    # of the weight's gradient (the float32 product, written out before it is rounded into
    # the gradient).
    per_class = max(rows * (itemsize + seed), rows * seed + dim * itemsize)
    width = _even_columns(vocab, budget // per_class)
    return BlockPlan("vocabulary", width, rows)
