"""``jaxloss bench``: time and memory of value-and-gradient, side by side, with ratios.

For each cost, size and dtype, every implementation is compiled with ``jax.jit``:
``value_and_grad`` of the mean loss (the training step's cost) and the loss alone. Timed
repetitions are interleaved between implementations, so that a noisy shared machine slows
them alike, and medians are reported. Each program's XLA temporary memory comes from its
compiled memory analysis. A roofline row, one XLA pass that reads the logits and writes an
array of the same size, is timed in the same run; times are also given as multiples of it.

Implementations: ``jaxloss`` (custom_vjp), ``forward`` (custom_jvp), ``reference`` (autodiff of
the article's formulas), ``optax``, and, for the article's costs, ``plain``: a closed-form custom_vjp written the simple
way (``logsumexp``, ``softmax * sum(y) - y``, ``sigmoid(z) - y``), without jaxloss's exactness
measures, to show what exactness costs.

``linear_cross_entropy`` is timed against the unfused path (``hidden @ weight``, then the
integer-label cost; its ratio column is unfused/impl) and optax's, with each program's
temporaries; ``--memory-plot`` adds the temporaries against the vocabulary size.

``--lm-head`` times the LM head's training step, value_and_grad of the mean loss for hidden (N, D) and weight
(D, V), at Llama 3's sizes on an accelerator (N=8192, D=4096, V=128256, bfloat16; ``--lm-head-size`` and
``--dtype`` choose others): optax and jaxloss on the logits, ``linear_cross_entropy`` both ways, and beside them,
in the same interleaved loop, torch's anchors where they import (torch, ``torch.compile``, Liger-Kernel's
``LigerFusedLinearCrossEntropyLoss``, Cut Cross-Entropy's ``linear_cross_entropy``); then the isolated
integer-label cost at the head's logits shape. ``python -m jaxloss.tools.device_check`` runs it on a GPU machine.

``--compile-for TARGET`` (``h100``, ``h200``, ``v4``, ``v5e``, ``v5p``, ``v6e``, ``v7x``) times nothing: it
compiles the same programs, jaxloss's and optax's, for that accelerator on this machine, without one, and prints
their temporaries and while loops (``jaxloss.tools.accelerators``).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import jax
import jax.numpy as jnp

import jaxloss
from jaxloss import forward, reference
from jaxloss.tools import run_info

# --- the simple closed-form baseline ("plain") ------------------------------------------


@jax.custom_vjp
def _plain_softmax(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.sum(labels * (jax.nn.logsumexp(logits, -1, keepdims=True) - logits), -1)


def _plain_softmax_fwd(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, Any]:
    lse = jax.nn.logsumexp(logits, -1, keepdims=True)
    return jnp.sum(labels * (lse - logits), -1), (logits, labels, lse)


def _plain_softmax_bwd(res: Any, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    logits, labels, lse = res
    probs = jnp.exp(logits - lse)
    g = g[..., None]
    return g * (probs * jnp.sum(labels, -1, keepdims=True) - labels), g * (lse - logits)


_plain_softmax.defvjp(_plain_softmax_fwd, _plain_softmax_bwd)


@jax.custom_vjp
def _plain_integer(logits: jax.Array, labels: jax.Array) -> jax.Array:
    lse = jax.nn.logsumexp(logits, -1)
    return lse - jnp.take_along_axis(logits, labels[..., None], -1)[..., 0]


def _plain_integer_fwd(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, Any]:
    lse = jax.nn.logsumexp(logits, -1, keepdims=True)
    loss = lse[..., 0] - jnp.take_along_axis(logits, labels[..., None], -1)[..., 0]
    return loss, (logits, labels, lse)


def _plain_integer_bwd(res: Any, g: jax.Array) -> tuple[jax.Array, None]:
    logits, labels, lse = res
    classes = jax.lax.broadcasted_iota(labels.dtype, logits.shape, logits.ndim - 1)
    onehot = (classes == labels[..., None]).astype(logits.dtype)
    return g[..., None] * (jnp.exp(logits - lse) - onehot), None


_plain_integer.defvjp(_plain_integer_fwd, _plain_integer_bwd)


@jax.custom_vjp
def _plain_sigmoid(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return jax.nn.softplus(logits) - labels * logits


def _plain_sigmoid_fwd(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, Any]:
    return _plain_sigmoid(logits, labels), (logits, labels)


def _plain_sigmoid_bwd(res: Any, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    logits, labels = res
    return g * (jax.nn.sigmoid(logits) - labels), -g * logits


_plain_sigmoid.defvjp(_plain_sigmoid_fwd, _plain_sigmoid_bwd)


def _upcast(fn: Callable[[jax.Array, jax.Array], jax.Array]) -> Callable[[jax.Array, jax.Array], jax.Array]:
    def wrapped(z: jax.Array, y: jax.Array) -> jax.Array:
        dtype = jnp.promote_types(z.dtype, jnp.float32)
        return fn(z.astype(dtype), y if jnp.issubdtype(y.dtype, jnp.integer) else y.astype(dtype))

    return wrapped


# --- the benchmark cases ----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A cost, its labels, and the implementations to time."""

    cost: str
    labels: str  # "onehot", "integer", "binary", "probs" or "log_probs"


CASES = (
    Case("softmax_cross_entropy", "onehot"),
    Case("softmax_cross_entropy_with_integer_labels", "integer"),
    Case("sigmoid_binary_cross_entropy", "binary"),
    Case("sigmoid_multilabel_cross_entropy", "binary"),
    Case("sigmoid_focal_loss", "binary"),
    Case("poly_loss_cross_entropy", "onehot"),
    Case("kl_divergence", "probs"),
    Case("kl_divergence_with_log_targets", "log_probs"),
)

QUICK_SIZES = {"softmax": [(256, 10), (1024, 4096)], "elementwise": [(1024, 1024)]}
FULL_SIZES = {
    "softmax": [(256, 10), (1024, 1000), (2048, 8192), (2048, 32768)],
    "elementwise": [(256, 10), (1024, 1024), (4096, 4096)],
}


def implementations(case: Case) -> dict[str, Callable[[jax.Array, jax.Array], jax.Array]]:
    """The implementations of ``case`` by name."""
    impls: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
        "jaxloss": getattr(jaxloss, case.cost),
        "forward": getattr(forward, case.cost),
        "reference": getattr(reference, case.cost),
    }
    try:
        import optax

        if case.cost == "sigmoid_multilabel_cross_entropy":
            impls["optax"] = lambda z, y: jnp.sum(optax.losses.sigmoid_binary_cross_entropy(z, y), -1)
        else:
            impls["optax"] = getattr(optax.losses, case.cost)
    except ImportError:
        pass
    plain_costs: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
        "softmax_cross_entropy": _plain_softmax,
        "softmax_cross_entropy_with_integer_labels": _plain_integer,
        "sigmoid_binary_cross_entropy": _plain_sigmoid,
        "sigmoid_multilabel_cross_entropy": lambda z, y: jnp.sum(_plain_sigmoid(z, y), -1),
    }
    if case.cost in plain_costs:
        impls["plain"] = _upcast(plain_costs[case.cost])
    return impls


def _inputs(case: Case, shape: tuple[int, int], dtype: Any, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    k1, k2 = jax.random.split(key)
    logits = (3.0 * jax.random.normal(k1, shape, jnp.float32)).astype(dtype)
    if case.labels == "integer":
        return logits, jax.random.randint(k2, shape[:-1], 0, shape[-1])
    if case.labels == "onehot":
        return logits, jax.nn.one_hot(jax.random.randint(k2, shape[:-1], 0, shape[-1]), shape[-1], dtype=dtype)
    if case.labels in ("probs", "log_probs"):  # a student's log-probabilities and a teacher's
        student = jax.nn.log_softmax(logits.astype(jnp.float32))
        teacher = jax.nn.log_softmax(3.0 * jax.random.normal(k2, shape, jnp.float32))
        targets = teacher if case.labels == "log_probs" else jnp.exp(teacher)
        return student.astype(dtype), targets.astype(dtype)
    return logits, jax.random.bernoulli(k2, 0.5, shape).astype(dtype)


def _compile(fn: Callable[..., Any], *args: jax.Array) -> tuple[Any, float]:
    compiled = jax.jit(fn).lower(*args).compile()
    try:
        analysis = compiled.memory_analysis()
        temp = float(analysis.temp_size_in_bytes) if analysis is not None else float("nan")
    except (AttributeError, NotImplementedError):
        temp = float("nan")
    return compiled, temp


@dataclass
class Result:
    """One implementation on one (cost, shape, dtype)."""

    cost: str
    shape: tuple[int, int]
    dtype: str
    implementation: str
    grad_ms: float
    loss_ms: float
    grad_temp_mb: float
    roofline_ms: float


def _time_interleaved(programs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in programs}
    for _ in range(repeats):
        for name, run in programs.items():
            start = time.perf_counter()
            jax.block_until_ready(run())
            samples[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(s) for name, s in samples.items()}


def bench_case(case: Case, shape: tuple[int, int], dtype: Any, repeats: int) -> list[Result]:
    """Times every implementation of ``case`` at ``shape`` and ``dtype``, interleaved."""
    logits, labels = _inputs(case, shape, dtype, jax.random.key(0))
    programs: dict[str, Callable[[], Any]] = {}
    temps: dict[str, float] = {}
    roofline, _ = _compile(lambda z: z * 2.0, logits)
    programs["roofline"] = lambda: roofline(logits)
    for name, fn in implementations(case).items():

        def mean_loss(z: jax.Array, y: jax.Array, fn: Callable[..., jax.Array] = fn) -> jax.Array:
            return jnp.mean(fn(z, y))

        grad_program, temps[name] = _compile(jax.value_and_grad(mean_loss), logits, labels)
        loss_program, _ = _compile(mean_loss, logits, labels)
        programs[f"{name}:grad"] = functools.partial(grad_program, logits, labels)
        programs[f"{name}:loss"] = functools.partial(loss_program, logits, labels)
    for run in programs.values():  # warm-up
        jax.block_until_ready(run())
    medians = _time_interleaved(programs, repeats)
    return [
        Result(
            case.cost,
            shape,
            jnp.dtype(dtype).name,
            name,
            medians[f"{name}:grad"],
            medians[f"{name}:loss"],
            temps[name] / 2**20,
            medians["roofline"],
        )
        for name in temps
    ]


# --- the fused linear + cross-entropy --------------------------------------------------------

QUICK_LINEAR = [(1024, 256, 8192)]
FULL_LINEAR = [(4096, 512, 32768)]
MEMORY_VOCABS = (4096, 8192, 16384, 32768, 65536, 131072)


def _linear_implementations() -> dict[str, Callable[[jax.Array, jax.Array, jax.Array], jax.Array]]:
    """The mean loss of ``hidden @ weight`` and the labels, per implementation (the objective differentiated)."""
    impls: dict[str, Callable[[jax.Array, jax.Array, jax.Array], jax.Array]] = {
        "jaxloss mean": lambda h, w, ids: jaxloss.linear_cross_entropy(h, w, ids, reduction="mean"),
        "jaxloss": lambda h, w, ids: jnp.mean(jaxloss.linear_cross_entropy(h, w, ids)),
        "unfused": lambda h, w, ids: jnp.mean(
            jaxloss.softmax_cross_entropy_with_integer_labels(jnp.dot(h, w, preferred_element_type=jnp.float32), ids)
        ),
    }
    try:
        import optax

        impls["optax"] = lambda h, w, ids: jnp.mean(
            optax.losses.softmax_cross_entropy_with_integer_labels(
                jnp.dot(h, w, preferred_element_type=jnp.float32), ids
            )
        )
    except ImportError:
        pass
    return impls


def _linear_inputs(rows: int, dim: int, vocab: int, dtype: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    hidden = jax.random.normal(k1, (rows, dim), jnp.float32).astype(dtype)
    weight = (jax.random.normal(k2, (dim, vocab), jnp.float32) / dim**0.5).astype(dtype)
    return hidden, weight, jax.random.randint(k3, (rows,), 0, vocab)


def _linear_program(fn: Callable[..., jax.Array], hidden: jax.Array, weight: jax.Array, labels: jax.Array) -> Any:
    """value_and_grad of the objective ``fn(h, w, labels)`` (a scalar) for hidden and weight, compiled."""
    return _compile(jax.value_and_grad(lambda h, w: fn(h, w, labels), argnums=(0, 1)), hidden, weight)


def bench_linear(rows: int, dim: int, vocab: int, dtype: Any, repeats: int) -> list[Result]:
    """value_and_grad of the mean, for hidden (rows, dim) and weight (dim, vocab): fused and not."""
    hidden, weight, labels = _linear_inputs(rows, dim, vocab, dtype)
    programs: dict[str, Callable[[], Any]] = {}
    temps: dict[str, float] = {}
    for name, fn in _linear_implementations().items():
        program, temps[name] = _linear_program(fn, hidden, weight, labels)
        programs[name] = functools.partial(program, hidden, weight)
        jax.block_until_ready(programs[name]())  # warm-up
    medians = _time_interleaved(programs, repeats)
    cost = f"linear_cross_entropy (D={dim})"
    dtype_name = jnp.dtype(dtype).name
    nan = float("nan")
    return [
        Result(cost, (rows, vocab), dtype_name, name, medians[name], nan, temps[name] / 2**20, nan) for name in temps
    ]


def linear_memory(rows: int, dim: int, vocabs: Sequence[int]) -> dict[str, list[float]]:
    """XLA's temporary memory (MiB) of value_and_grad against the vocabulary size, compiled only."""
    curves: dict[str, list[float]] = {name: [] for name in ("jaxloss", "jaxloss mean", "unfused")}
    impls = _linear_implementations()
    for vocab in vocabs:
        hidden = jax.ShapeDtypeStruct((rows, dim), jnp.float32)
        weight = jax.ShapeDtypeStruct((dim, vocab), jnp.float32)
        labels = jnp.zeros((rows,), jnp.int32)
        for name in curves:
            _, temp = _linear_program(impls[name], hidden, weight, labels)  # type: ignore[arg-type]
            curves[name].append(temp / 2**20)
    return curves


def plot_linear_memory(path: str, rows: int, dim: int, vocabs: Sequence[int], curves: dict[str, list[float]]) -> None:
    """Saves the memory-against-vocabulary plot (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    labels = {
        "unfused": "logits, then the cost",
        "jaxloss": "linear_cross_entropy, per example",
        "jaxloss mean": 'linear_cross_entropy, reduction="mean"',
    }
    for name, label in labels.items():
        if name in curves:
            ax.plot(vocabs, curves[name], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("vocabulary size V")
    ax.set_ylabel("XLA temporary memory of value_and_grad (MiB)")
    ax.set_title(f"N={rows}, D={dim}, float32")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# --- communication of the vocabulary-parallel costs ---------------------------------------------


SHARDED_OPTIONS: dict[str, tuple[dict[str, Any], int, str]] = {
    # name: (options, floats per token in the forward pass, what they are)
    "plain": ({}, 3, "pmax of M; psum of R and z_l"),
    "ignore_index": ({"ignore_index": 0}, 3, "nothing more"),
    "z_loss": ({"z_loss": 1e-4}, 3, "nothing more"),
    "soft_cap": ({"soft_cap": 30.0}, 3, "nothing more"),
    "weights": ({"weights": True}, 4, "+ w_l"),
    "label_smoothing": ({"label_smoothing": 0.1}, 5, "+ classes in play, Q"),
    "label_smoothing + weights": ({"label_smoothing": 0.1, "weights": True}, 7, "+ w_l, classes in play, W, Q"),
}


def sharded_communication(rows: int, dim: int, vocab: int) -> str:
    """Bytes each device sends per step (value_and_grad), by formula and from the compiled HLO.

    A (2, k/2) mesh of the devices JAX sees: axis "b" splits the batch, axis "v" the vocabulary.
    Compiled, not run.
    """
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from jaxloss import sharded
    from jaxloss.tools import hlo

    count = len(jax.devices())
    if count < 4 or count % 2:
        return f"sharded: needs an even number of at least 4 devices, JAX sees {count}"
    mesh = jax.make_mesh((2, count // 2), ("b", "v"))
    local_rows, local_vocab = rows // 2, vocab // (count // 2)

    def put(shape: tuple[int, ...], dtype: Any, spec: Any) -> jax.Array:
        return jax.device_put(jnp.zeros(shape, dtype), NamedSharding(mesh, spec))

    labels = put((rows,), jnp.int32, P("b"))
    class_weights = put((vocab,), jnp.float32, P("v"))

    def integer(options: dict[str, Any]) -> Callable[[jax.Array], jax.Array]:
        weighted = options.get("weights") is not None
        options = {k: v for k, v in options.items() if k != "weights"}

        def local(z: jax.Array, y: jax.Array, w: jax.Array) -> jax.Array:
            return sharded.softmax_cross_entropy_with_integer_labels(
                z, y, axis_name="v", weights=w if weighted else None, **options
            )

        cost = jax.shard_map(local, mesh=mesh, in_specs=(P("b", "v"), P("b"), P("v")), out_specs=P("b"))
        return lambda z: jnp.mean(cost(z, labels, class_weights))

    def fused(h: jax.Array, w: jax.Array) -> jax.Array:
        cost = jax.shard_map(
            lambda h, w, y: sharded.linear_cross_entropy(h, w, y, axis_name="v"),
            mesh=mesh,
            in_specs=(P("b", None), P(None, "v"), P("b")),
            out_specs=P("b"),
        )
        return jnp.mean(cost(h, w, labels))

    logits = put((rows, vocab), jnp.float32, P("b", "v"))
    hidden, weight = put((rows, dim), jnp.float32, P("b", None)), put((dim, vocab), jnp.float32, P(None, "v"))
    lines = [
        f"sharded costs, N={rows} D={dim} V={vocab} on a 2x{count // 2} mesh (b: batch, v: vocabulary), float32;",
        "bytes per device per step (value_and_grad), the means' scalars included in the measured column:",
    ]

    def line(name: str, text: str, value: int, words: str) -> str:
        found = hlo.collectives(text)
        total = sum(b for _, _, b in found)
        largest = max((e for _, e, _ in found), default=0)
        return (
            f"  {name:26s} formula {value:>10,d} B = {words}; measured {total:>10,d} B in {len(found)} collectives, "
            f"the largest {largest:,d} elements"
        )

    for name, (options, floats, words) in SHARDED_OPTIONS.items():
        text = jax.jit(jax.value_and_grad(integer(options))).lower(logits).compile().as_text()
        lines.append(
            line(f"integer {name}", str(text), 4 * floats * local_rows, f"{floats} floats/token x N/2 ({words})")
        )
    text = jax.jit(jax.value_and_grad(fused, argnums=(0, 1))).lower(hidden, weight).compile().as_text()
    linear_bytes = 12 * local_rows + 4 * local_rows * dim + 4 * dim * local_vocab
    words = "12 N/2 + 4 (N/2) D + 4 D V/k: the forward's 3 floats/token, the psum of dh over v, of dW over b"
    lines.append(line("linear", str(text), linear_bytes, words))
    lines.append(f"  logits per device: {local_rows * local_vocab:,d} elements")
    return "\n".join(lines)


# --- whole training steps ----------------------------------------------------------------------

STEP_CLASSIFIER = (1024, 784, 512, 1000)  # batch, inputs, hidden units, classes
STEP_LM_HEAD = (2048, 512, 32768)  # tokens, model width, vocabulary


def _step_losses() -> dict[str, Callable[[jax.Array, jax.Array], jax.Array]]:
    import optax

    return {
        "jaxloss": jaxloss.softmax_cross_entropy_with_integer_labels,
        "optax": optax.losses.softmax_cross_entropy_with_integer_labels,
    }


def classifier_step_programs(dtype: Any) -> dict[str, Callable[[], Any]]:
    """One adam step of a 784-512-1000 MLP on a batch of 1024, per loss; float32 master weights,
    the forward pass in ``dtype``."""
    import optax

    batch, inputs, width, classes = STEP_CLASSIFIER
    k1, k2, k3, k4 = jax.random.split(jax.random.key(1), 4)
    params = {
        "w1": jax.random.normal(k1, (inputs, width)) / inputs**0.5,
        "b1": jnp.zeros(width),
        "w2": jax.random.normal(k2, (width, classes)) / width**0.5,
        "b2": jnp.zeros(classes),
    }
    x = jax.random.normal(k3, (batch, inputs)).astype(dtype)
    labels = jax.random.randint(k4, (batch,), 0, classes)
    optimizer = optax.adam(1e-3)
    state = optimizer.init(params)
    programs: dict[str, Callable[[], Any]] = {}
    for name, loss_fn in _step_losses().items():

        def objective(p: Any, loss_fn: Callable[..., jax.Array] = loss_fn) -> jax.Array:
            p = jax.tree.map(lambda a: a.astype(dtype), p)
            hidden = jax.nn.relu(x @ p["w1"] + p["b1"])
            return jnp.mean(loss_fn(hidden @ p["w2"] + p["b2"], labels))

        def step(p: Any, s: Any, objective: Callable[[Any], jax.Array] = objective) -> Any:
            loss, grads = jax.value_and_grad(objective)(p)
            updates, s = optimizer.update(grads, s, p)
            return optax.apply_updates(p, updates), s, loss

        compiled = jax.jit(step).lower(params, state).compile()
        programs[name] = functools.partial(compiled, params, state)
    return programs


def lm_head_step_programs(dtype: Any) -> dict[str, Callable[[], Any]]:
    """value_and_grad of the mean loss w.r.t. hidden states and the output weight, per cost."""
    rows, dim, vocab = STEP_LM_HEAD
    hidden, weight, labels = _linear_inputs(rows, dim, vocab, dtype)
    losses = _step_losses()
    impls: dict[str, Callable[..., jax.Array]] = {
        "jaxloss fused mean": lambda h, w, ids: jaxloss.linear_cross_entropy(h, w, ids, reduction="mean"),
        "jaxloss fused": lambda h, w, ids: jnp.mean(jaxloss.linear_cross_entropy(h, w, ids)),
        "jaxloss": lambda h, w, ids: jnp.mean(losses["jaxloss"](h @ w, ids)),
        "optax": lambda h, w, ids: jnp.mean(losses["optax"](h @ w, ids)),
    }
    programs: dict[str, Callable[[], Any]] = {}
    for name, fn in impls.items():
        program, _ = _linear_program(fn, hidden, weight, labels)
        programs[name] = functools.partial(program, hidden, weight)
    return programs


def bench_steps(dtypes: Sequence[str], repeats: int) -> list[dict[str, Any]]:
    """Median step times, interleaved per step and dtype, with optax's time over each."""
    rows = []
    for step_name, make in (
        ("classifier step (adam, 1024 x 784-512-1000)", classifier_step_programs),
        ("LM head v&g (N=2048, D=512, V=32768)", lm_head_step_programs),
    ):
        for dtype in dtypes:
            print(f"  {step_name} {dtype} ...", file=sys.stderr, flush=True)
            programs = make(jnp.dtype(dtype))
            for run in programs.values():  # warm-up
                jax.block_until_ready(run())
            medians = _time_interleaved(programs, repeats)
            for name, ms in medians.items():
                rows.append(
                    {"step": step_name, "dtype": dtype, "impl": name, "ms": ms, "optax/impl": medians["optax"] / ms}
                )
    return rows


def format_steps(rows: Sequence[dict[str, Any]]) -> str:
    """The step table."""
    header = ("step", "dtype", "impl", "ms", "optax/impl")
    lines = [(r["step"], r["dtype"], r["impl"], f"{r['ms']:.3g}", f"{r['optax/impl']:.2f}") for r in rows]
    cells = [header, *lines]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells)


def format_results(results: Sequence[Result]) -> str:
    """A table with, per size, each implementation's times, ratios and temporaries."""
    header = ("cost", "shape", "dtype", "impl", "v&g ms", "x roofline", "optax/impl", "loss ms", "temp MB")
    lines = []
    by_key: dict[tuple[str, tuple[int, int], str], dict[str, Result]] = {}
    for r in results:
        by_key.setdefault((r.cost, r.shape, r.dtype), {})[r.implementation] = r
    for (cost, shape, dtype), group in by_key.items():
        base = "unfused" if "unfused" in group else "optax"
        optax_ms = group[base].grad_ms if base in group else float("nan")
        for name, r in group.items():
            lines.append(
                (
                    cost,
                    f"{shape[0]}x{shape[1]}",
                    dtype,
                    name,
                    f"{r.grad_ms:.3g}",
                    f"{r.grad_ms / r.roofline_ms:.2f}",
                    f"{optax_ms / r.grad_ms:.2f}",
                    f"{r.loss_ms:.3g}",
                    f"{r.grad_temp_mb:.1f}",
                )
            )
    cells = [header, *lines]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells)


# --- the LM head at an accelerator's sizes, beside torch's anchors -------------------------------

LM_HEAD_ACCELERATOR = (8192, 4096, 128256)
"""``--lm-head``'s tokens, width and vocabulary on an accelerator: Llama 3's output layer, 8192 tokens a step."""
LM_HEAD_CPU = (1024, 256, 16384)
"""``--lm-head``'s sizes on a CPU: every step of the table in about a second or less on 2 cores."""
HEAD_NAMES = {
    "optax": "optax unfused",
    "unfused": "jaxloss unfused",
    "jaxloss mean": "jaxloss fused mean",
    "jaxloss": "jaxloss fused none",
}
"""``_linear_implementations``' programs under the names the LM-head table gives them."""
ANCHORS = ("torch unfused", "torch.compile unfused", "liger fused", "cce")
"""torch's steps on the same inputs: plain and compiled, Liger-Kernel's fused loss, Cut Cross-Entropy's."""
INTEGER_CASE = next(case for case in CASES if case.labels == "integer")


@dataclass
class HeadRow:
    """One implementation of the LM head's step: its measurements, or why it has none.

    ``status`` is ``"ok"`` for a row that ran, else ``"not importable"``, ``"needs CUDA"`` or ``"failed"``,
    and ``reason`` says why. ``temp_bytes`` is XLA's temporaries for JAX's rows; for torch's, the peak bytes
    allocated above the inputs less the gradients (on CUDA only). ``optax_over_impl`` is optax's median time
    over this row's, both timed in one interleaved loop; ``tflops`` counts the step's three matrix products.
    """

    impl: str
    framework: str
    status: str
    reason: str = ""
    ms: float | None = None
    optax_over_impl: float | None = None
    temp_bytes: float | None = None
    loss: float | None = None
    tflops: float | None = None


def parse_size(text: str) -> tuple[int, int, int]:
    """The tokens, width and vocabulary of ``--lm-head-size``: three positive integers.

    Args:
        text: ``"N,D,V"`` (or ``"NxDxV"``).

    Returns:
        ``(N, D, V)``.

    Example:
        >>> parse_size("8192,4096,128256")
        (8192, 4096, 128256)
    """
    try:
        rows, dim, vocab = (int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N,D,V (tokens, width, vocabulary), got {text!r}") from None
    if min(rows, dim, vocab) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes, got {text!r}")
    return rows, dim, vocab


def _why(error: BaseException) -> str:
    """An exception in one line: its type and its message's first line."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}"[:240] if lines else type(error).__name__


def _torch_loss(name: str, torch: Any) -> Callable[..., Any]:
    """The mean loss of anchor ``name`` as ``loss(hidden, weight, labels)``, weight (V, D) as torch lays it out.

    torch has no matrix product with float32 output for bfloat16 inputs: its unfused logits are rounded to the
    input dtype, then cast to float32, as a torch model does; JAX's keep the product's float32.
    """
    from torch.nn import functional

    def unfused(hidden: Any, weight: Any, labels: Any) -> Any:
        return functional.cross_entropy((hidden @ weight.T).float(), labels)

    if name == "torch unfused":
        return unfused
    if name == "torch.compile unfused":
        return torch.compile(unfused)  # type: ignore[no-any-return]
    if name == "liger fused":
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        liger = LigerFusedLinearCrossEntropyLoss()  # reduction="mean"
        return lambda hidden, weight, labels: liger(weight, hidden, labels)
    from cut_cross_entropy import linear_cross_entropy  # reduction="mean"

    return lambda hidden, weight, labels: linear_cross_entropy(hidden, weight, labels)


class _TorchStep:
    """The value and gradients of a torch loss for hidden and weight, finished before it returns."""

    def __init__(self, torch: Any, loss: Callable[..., Any], hidden: Any, weight: Any, labels: Any) -> None:
        self.torch, self.loss, self.inputs = torch, loss, (hidden, weight, labels)

    def _step(self) -> Any:
        hidden, weight, labels = self.inputs
        loss = self.loss(hidden, weight, labels)
        self.torch.autograd.grad(loss, (hidden, weight))  # returned, not accumulated in .grad
        if hidden.is_cuda:
            self.torch.cuda.synchronize()
        return loss.detach()

    def __call__(self) -> None:
        self._step()

    def warm_up(self) -> tuple[float, float | None]:
        """Three steps (torch.compile compiles in the first). Returns the loss, and on CUDA the peak bytes
        allocated above the inputs during the last step, less the gradients it returned."""
        self._step()
        self._step()
        hidden, weight, _ = self.inputs
        if not hidden.is_cuda:
            return float(self._step()), None
        cuda = self.torch.cuda
        base = cuda.memory_allocated()
        cuda.reset_peak_memory_stats()
        loss = float(self._step())
        gradients = hidden.numel() * hidden.element_size() + weight.numel() * weight.element_size()
        return loss, float(cuda.max_memory_allocated() - base - gradients)


def torch_anchors(
    hidden: jax.Array, weight: jax.Array, labels: jax.Array
) -> tuple[dict[str, Callable[[], Any]], list[HeadRow], str]:
    """torch's anchors on the LM head's inputs, warmed up and ready to time, each in its own ``try``.

    Liger-Kernel and Cut Cross-Entropy are Triton kernels: they run on CUDA only, and only when JAX's device
    is a GPU too (the rows are compared side by side). torch's own rows run on the CPU otherwise.

    Args:
        hidden: (N, D), the JAX inputs of the table; copied, in their dtype, to torch.
        weight: (D, V); torch gets its transpose, (V, D), a linear layer's layout.
        labels: (N,) integers.

    Returns:
        The steps that ran, by name; a row per anchor (``status`` ``"ok"`` with the loss and memory, or why
        not); and a line naming torch's version and device.
    """
    if jax.devices()[0].platform == "cpu" and "torch" not in sys.modules:
        # Before torch's OpenMP starts: its threads otherwise spin after each operation and, interleaved with
        # XLA's on a few cores, slowed both 4 to 80-fold here (2 cores).
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        os.environ.setdefault("KMP_BLOCKTIME", "0")
    try:
        import numpy as np
        import torch
    except Exception as error:  # absent, or a broken install: the rows say which
        return {}, [HeadRow(name, "torch", "not importable", _why(error)) for name in ANCHORS], ""
    cuda = jax.devices()[0].platform == "gpu" and torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    dtype = getattr(torch, jnp.dtype(hidden.dtype).name)

    def put(x: jax.Array) -> Any:  # through float32, which holds every bfloat16 and float16 value
        return torch.from_numpy(np.array(jnp.asarray(x, jnp.float32))).to(dtype).to(device)

    inputs = (
        put(hidden).requires_grad_(),
        put(weight).T.contiguous().requires_grad_(),
        torch.from_numpy(np.array(labels)).long().to(device),
    )
    description = f"torch {torch.__version__} on {torch.cuda.get_device_name() if cuda else 'cpu'}"
    steps: dict[str, Callable[[], Any]] = {}
    rows = []
    for name in ANCHORS:
        if name in ("liger fused", "cce") and not cuda:
            where = "torch sees no CUDA device" if not torch.cuda.is_available() else "JAX's device is no GPU"
            rows.append(HeadRow(name, "torch", "needs CUDA", f"Triton kernels; {where}"))
            continue
        print(f"  LM head {name} ...", file=sys.stderr, flush=True)
        try:
            loss = _torch_loss(name, torch)
        except Exception as error:
            rows.append(HeadRow(name, "torch", "not importable", _why(error)))
            continue
        step = _TorchStep(torch, loss, *inputs)
        try:
            value, temp = step.warm_up()
        except Exception as error:  # a compiler missing, out of memory, a dtype a kernel lacks
            rows.append(HeadRow(name, "torch", "failed", _why(error)))
            continue
        steps[name] = step
        rows.append(HeadRow(name, "torch", "ok", loss=value, temp_bytes=temp))
    return steps, rows, description


def bench_lm_head(
    rows: int, dim: int, vocab: int, dtype: Any, repeats: int, anchors: bool = True
) -> tuple[list[HeadRow], str]:
    """The LM head's training step, value_and_grad of the mean loss for hidden and weight, per implementation.

    JAX's programs (optax and jaxloss on the logits ``hidden @ weight``, float32, and
    ``jaxloss.linear_cross_entropy`` both ways) and torch's anchors run on the same inputs, their timed
    repetitions interleaved in one loop; an implementation that fails is reported and the rest go on.

    Args:
        rows: N, the tokens.
        dim: D, the model width.
        vocab: V, the vocabulary.
        dtype: of hidden and weight.
        repeats: timed repetitions of each.
        anchors: whether to run torch's anchors beside (``torch_anchors``).

    Returns:
        A row per implementation, JAX's then torch's, and a line describing torch ("" when it did not run).
    """
    hidden, weight, labels = _linear_inputs(rows, dim, vocab, dtype)
    impls = _linear_implementations()
    programs: dict[str, Callable[[], Any]] = {}
    table: dict[str, HeadRow] = {}
    for key, name in HEAD_NAMES.items():
        if key not in impls:
            table[name] = HeadRow(name, "jax", "not importable", "optax is not installed")
            continue
        print(f"  LM head {name} ...", file=sys.stderr, flush=True)
        try:
            program, temp = _linear_program(impls[key], hidden, weight, labels)
            run = functools.partial(program, hidden, weight)
            loss = float(jax.block_until_ready(run())[0])
        except Exception as error:  # on an accelerator, out of memory: reported, and the rest go on
            table[name] = HeadRow(name, "jax", "failed", _why(error))
            continue
        programs[name] = run
        table[name] = HeadRow(name, "jax", "ok", temp_bytes=None if math.isnan(temp) else temp, loss=loss)
    description = ""
    if anchors:
        steps, anchor_rows, description = torch_anchors(hidden, weight, labels)
        programs.update(steps)
        table.update((row.impl, row) for row in anchor_rows)
    medians = _time_interleaved(programs, repeats)
    optax_ms = medians.get(HEAD_NAMES["optax"])
    for name, ms in medians.items():
        table[name].ms = ms
        table[name].optax_over_impl = optax_ms / ms if optax_ms else None
        table[name].tflops = 6.0 * rows * dim * vocab / ms / 1e9
    return list(table.values()), description


def _size(count: float | None) -> str:
    if count is None:
        return "-"
    return f"{count / 2**30:.2f} GiB" if abs(count) >= 2**30 else f"{count / 2**20:.1f} MiB"


def format_head(rows: Sequence[HeadRow]) -> str:
    """The LM-head table, then a line for each implementation that did not run, saying why."""
    header = ("impl", "ms", "optax/impl", "temporaries", "TFLOP/s", "loss")

    def number(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    cells = [header] + [
        (
            r.impl,
            number(r.ms, ".4g"),
            number(r.optax_over_impl, ".2f"),
            _size(r.temp_bytes),
            number(r.tflops, ".3g"),
            number(r.loss, ".6g"),
        )
        for r in rows
        if r.status == "ok"
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells]
    lines += [f"{r.impl}: {r.status} ({r.reason})" for r in rows if r.status != "ok"]
    return "\n".join(lines)


HEAD_LEGEND = """\
optax/impl: optax unfused's median time over the row's (above 1: faster than optax), every row timed in one
interleaved loop. unfused: the logits hidden @ weight in float32 (torch: in the input dtype, then cast), then the
cost; fused: jaxloss.linear_cross_entropy, reduction="mean" or the mean of reduction="none". temporaries: XLA's
temp_size_in_bytes of the compiled step; torch's: the peak allocated above the inputs less the gradients (CUDA
only). TFLOP/s: 6 N D V, the step's three matrix products, over the time. loss: the step's value, alike in every row."""


def isolated_shapes(rows: int, vocab: int) -> list[tuple[int, int]]:
    """The logits shapes of ``--lm-head``'s isolated costs: the head's own, and 32768 classes when it has more.

    Example:
        >>> isolated_shapes(8192, 128256)
        [(8192, 32768), (8192, 128256)]
    """
    return sorted({(rows, min(vocab, 32768)), (rows, vocab)})


def lm_head_settings(
    platform: str,
    size: tuple[int, int, int] | None = None,
    dtype: str | None = None,
    repeats: int | None = None,
) -> tuple[tuple[int, int, int], str, tuple[str, ...], int]:
    """``--lm-head``'s settings on ``platform``, each the one given or the platform's default.

    Args:
        platform: JAX's platform of the default device (``"cpu"``, ``"gpu"``, ``"tpu"``).
        size: (N, D, V); by default Llama 3's head on an accelerator, a small one on a CPU.
        dtype: of the head's inputs; by default bfloat16 on an accelerator, float32 on a CPU.
        repeats: timed repetitions; by default 10 on an accelerator, 5 on a CPU.

    Returns:
        The head's (N, D, V), its dtype, the isolated cost's dtypes (the given one, or float32 and, on an
        accelerator, bfloat16) and the repetitions.

    Example:
        >>> lm_head_settings("gpu")
        ((8192, 4096, 128256), 'bfloat16', ('float32', 'bfloat16'), 10)
        >>> lm_head_settings("cpu", dtype="bfloat16")
        ((1024, 256, 16384), 'bfloat16', ('bfloat16',), 5)
    """
    accelerator = platform != "cpu"
    isolated = (dtype,) if dtype else ("float32", "bfloat16") if accelerator else ("float32",)
    return (
        size or (LM_HEAD_ACCELERATOR if accelerator else LM_HEAD_CPU),
        dtype or ("bfloat16" if accelerator else "float32"),
        isolated,
        repeats or (10 if accelerator else 5),
    )


def _interruptible() -> None:
    """Lets SIGINT raise KeyboardInterrupt even where this process inherited it ignored (a shell's background
    job), so that a time limit's SIGINT still gets the tables measured so far."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _write_json(path: str, argv: Sequence[str] | None, started: float, **fields: Any) -> None:
    record = {**run_info.header("jaxloss bench", argv, started), **fields}
    with open(path, "w") as f:
        json.dump(record, f, indent=1)


def lm_head_main(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """``jaxloss bench --lm-head``: the LM head's table with torch's anchors, then the isolated cost.

    The isolated cost is ``softmax_cross_entropy_with_integer_labels`` at ``isolated_shapes``, every
    implementation of ``bench_case`` beside optax's. An interruption (Ctrl-C, or the SIGINT of
    ``jaxloss.tools.device_check``'s time limit) keeps the tables finished so far and writes them to the JSON.
    """
    started = time.perf_counter()
    device = jax.devices()[0]
    (rows, dim, vocab), dtype, isolated_dtypes, repeats = lm_head_settings(
        device.platform, args.lm_head_size, args.dtype, args.repeats
    )
    print(
        f"jaxloss {jaxloss.__version__} bench --lm-head on {device.platform} ({device.device_kind}), "
        f"jax {jax.__version__}\nLM head: value_and_grad of the mean loss for hidden (N, D) and weight (D, V), "
        f"N={rows} D={dim} V={vocab} {dtype}, medians of {repeats} interleaved runs",
        flush=True,
    )
    head: list[HeadRow] = []
    results: list[Result] = []
    interrupted = False
    try:
        head, description = bench_lm_head(rows, dim, vocab, jnp.dtype(dtype), repeats, not args.no_anchors)
        print(format_head(head))
        print(HEAD_LEGEND + (f"\n{description}" if description else ""), flush=True)
        for shape in isolated_shapes(rows, vocab):
            for name in isolated_dtypes:
                print(f"  {INTEGER_CASE.cost} {shape[0]}x{shape[1]} {name} ...", file=sys.stderr, flush=True)
                results.extend(bench_case(INTEGER_CASE, shape, jnp.dtype(name), repeats))
    except KeyboardInterrupt:
        interrupted = True
        print("jaxloss bench: interrupted; the tables finished so far follow", file=sys.stderr, flush=True)
    if results:
        print(f"\nthe isolated cost at the head's logits, medians of {repeats} interleaved runs:")
        print(format_results(results), flush=True)
    if args.json:
        head_record = {"tokens": rows, "width": dim, "vocab": vocab, "dtype": dtype, "repeats": repeats}
        _write_json(
            args.json,
            argv,
            started,
            interrupted=interrupted,
            lm_head={**head_record, "rows": [asdict(r) for r in head]},
            results=[asdict(r) for r in results],
            steps=[],
            linear_memory=None,
        )
    return 130 if interrupted else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``jaxloss bench``."""
    parser = argparse.ArgumentParser(prog="jaxloss bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, float32 only: under a minute")
    parser.add_argument("--json", metavar="PATH", help="also write the results to this JSON file")
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions per program")
    parser.add_argument("--cost", action="append", help="only these costs (repeatable)")
    parser.add_argument(
        "--memory-plot", metavar="PATH", help="also plot linear_cross_entropy's memory against V (matplotlib)"
    )
    parser.add_argument(
        "--sharded",
        action="store_true",
        help="print the communication of the vocabulary-parallel costs (8 CPU devices on a CPU)",
    )
    parser.add_argument(
        "--steps",
        action="store_true",
        help="also time whole steps with jaxloss and optax: an MLP classifier's adam step and an LM output layer",
    )
    parser.add_argument("--steps-only", action="store_true", help="time the whole steps only")
    parser.add_argument(
        "--lm-head",
        action="store_true",
        help="the LM head's step (value_and_grad for hidden and weight) with optax, jaxloss unfused and fused, and "
        "torch's anchors (torch, torch.compile, Liger-Kernel, Cut Cross-Entropy) where importable; then the "
        "isolated integer-label cost at its logits' shape. Llama 3's sizes on an accelerator, small on a CPU",
    )
    parser.add_argument(
        "--lm-head-size",
        type=parse_size,
        metavar="N,D,V",
        help=f"--lm-head's tokens, width and vocabulary (default: {','.join(map(str, LM_HEAD_ACCELERATOR))} on "
        f"an accelerator, {','.join(map(str, LM_HEAD_CPU))} on a CPU)",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        help="--lm-head's dtype (default: bfloat16 on an accelerator, float32 on a CPU; the isolated cost in "
        "float32 and bfloat16 on an accelerator)",
    )
    parser.add_argument("--no-anchors", action="store_true", help="--lm-head without torch's anchors")
    parser.add_argument(
        "--per-example",
        action="store_true",
        help="per-example gradient norms and clipping (jaxloss.grad_norms, TokenStats.grad_norm, clip_norm) "
        "beside vmap(grad), and the fused head's step with them against its plain step",
    )
    from jaxloss.tools import accelerators

    parser.add_argument(
        "--compile-for",
        metavar="TARGET",
        choices=accelerators.TARGETS,
        help="no timing: compile the programs for an accelerator on this machine, without it, and print their "
        "temporaries and loops beside optax's (" + ", ".join(accelerators.TARGETS) + "; needs the compiler's "
        "plugin at jax's version: jax-cuda13-plugin and jax-cuda13-pjrt, or libtpu)",
    )
    args = parser.parse_args(argv)
    _interruptible()
    if args.compile_for:  # before jax starts its backends: they must stay on the CPU
        return accelerators.bench_main(args.compile_for, args.quick, args.cost)
    if (args.lm_head_size or args.dtype or args.no_anchors) and not args.lm_head:
        parser.error("--lm-head-size, --dtype and --no-anchors go with --lm-head")
    if args.lm_head:
        # JAX takes 75% of a GPU's memory when its backend starts unless told not to; torch's anchors need some.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        return lm_head_main(args, argv)
    started = time.perf_counter()
    if args.per_example:
        from jaxloss.tools import per_example

        print(per_example.run(args.quick, args.repeats or (5 if args.quick else 7)), flush=True)
        return 0
    if args.sharded:
        jax.config.update("jax_num_cpu_devices", 8)  # before the backend starts; CPU only
        print(sharded_communication(4096, 512, 32768))
        return 0
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    dtypes = ("float32",) if args.quick else ("float32", "bfloat16")
    repeats = args.repeats or (7 if args.quick else 15)
    device = jax.devices()[0]
    print(
        f"jaxloss {jaxloss.__version__} bench on {device.platform} ({device.device_kind}), "
        f"medians of {repeats} interleaved runs",
        flush=True,
    )
    results: list[Result] = []
    step_rows: list[dict[str, Any]] = []
    interrupted = False
    try:  # an interruption (Ctrl-C, a time limit's SIGINT) keeps the rows measured so far
        if args.steps or args.steps_only:
            step_rows = bench_steps(dtypes, max(5, repeats))
            print(format_steps(step_rows), flush=True)
        if args.steps_only:
            args.cost = ["none"]
        for case in CASES:
            if args.cost and case.cost not in args.cost:
                continue
            kind = "elementwise" if case.labels == "binary" else "softmax"  # rows of classes for the rest
            for shape in sizes[kind]:
                for dtype in dtypes:
                    print(f"  {case.cost} {shape[0]}x{shape[1]} {dtype} ...", file=sys.stderr, flush=True)
                    results.extend(bench_case(case, shape, jnp.dtype(dtype), repeats))
        if not args.cost or "linear_cross_entropy" in args.cost:
            for rows, dim, vocab in QUICK_LINEAR if args.quick else FULL_LINEAR:
                for dtype in dtypes:
                    print(f"  linear_cross_entropy {rows}x{dim}x{vocab} {dtype} ...", file=sys.stderr, flush=True)
                    results.extend(bench_linear(rows, dim, vocab, jnp.dtype(dtype), max(3, repeats // 3)))
    except KeyboardInterrupt:
        interrupted = True
        print("jaxloss bench: interrupted; the rows measured so far follow", file=sys.stderr, flush=True)
    if results:
        print(format_results(results))
    memory = None
    if args.memory_plot and not interrupted:
        rows, dim = FULL_LINEAR[0][:2]
        curves = linear_memory(rows, dim, MEMORY_VOCABS)
        memory = {"rows": rows, "dim": dim, "vocabs": list(MEMORY_VOCABS), **curves}
        print(f"linear_cross_entropy temporaries (MiB) at N={rows}, D={dim}, float32:")
        columns = (MEMORY_VOCABS, curves["jaxloss"], curves["jaxloss mean"], curves["unfused"])
        for vocab, fused, reduced, unfused in zip(*columns, strict=True):
            print(
                f"  V={vocab:<7d} fused {fused:8.1f}  fused mean {reduced:8.1f}  unfused {unfused:9.1f}  "
                f"ratios {unfused / fused:6.1f} {unfused / reduced:5.1f}"
            )
        plot_linear_memory(args.memory_plot, rows, dim, MEMORY_VOCABS, curves)
    if args.json:
        _write_json(
            args.json,
            argv,
            started,
            results=[asdict(r) for r in results],
            steps=step_rows,
            linear_memory=memory,
            interrupted=interrupted,
        )
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
