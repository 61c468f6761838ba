"""The precision sweep of ``jaxloss verify``: errors in ulps against mpmath, side by side.

Inputs (``quick``; ``full`` uses more points):

* logits log-spaced over ±1e-5 … ±1e4, plus 0 and ±inf; rows ``[t, 0, -t, t/2]``, whose
  differences are exact, their mirror images, random rows of 2, 10 and 128 classes at scales up to
  1e4, and rows with ``+inf`` and ``-inf`` entries;
* probabilities log-spaced from 1e-30 up to 1 - 1e-7, plus exactly 0 and 1;
* hard labels (0/1, one-hot, integer) and soft labels.

Scoring, with the inputs taken as exact: a loss, a gradient element or a label-gradient element
is scored in ulps of its exact value (a result whose exact value is below the smallest normal
number may flush to zero). Soft-label logit gradients :math:`a \\sum y - y` are scored in units
of :math:`\\epsilon \\max(|a \\sum y|, |y|)` (the issue's :math:`\\epsilon \\max(|a|, |y|)` when the
labels sum to one). A non-finite result where the exact one is finite and
representable counts as a failure. Softmax costs are scored against the exact cost of
``z - max z`` as the dtype rounds it (the same as the exact cost when those differences are
exact), which is the best any float computation of a softmax can do.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np

from jaxloss.tools import exact as _exact

TARGET_ULPS = 2.0  # losses
SUM_TARGET_ULPS = 4.0  # losses that are soft-label sums over classes: C rounded terms
# Gradient elements: a softmax probability e/S is rounded three times (e, S and the quotient),
# which reaches 2.5 ulp even with a correctly rounded exp and sum, and S carries the rounding
# of its summation; 4 ulp bounds it on rows of up to 128 classes.
GRAD_TARGET_ULPS = 4.0


@dataclass(frozen=True)
class Sweep:
    """Inputs for one cost and one kind of labels, with their exact results."""

    cost: str
    labels: str  # "hard", "soft" or "integer"
    inputs: np.ndarray  # (rows, classes) or (n,) for element-wise costs
    targets: np.ndarray
    exact: list[Any]  # per row (or element): (loss, input gradient, label gradient or None)
    probs: list[list[Any]] | None  # the a (sigmoid) or a * sum(y) (softmax) term of logit gradients
    allowance: list[tuple[Any, list[Any], list[Any]]] | None = None  # for rounding z - max z

    @property
    def loss_target(self) -> float:
        summed = self.cost in SUMMED_COSTS and self.labels == "soft"
        return SUM_TARGET_ULPS if summed else TARGET_ULPS


ELEMENTWISE_COSTS = ("sigmoid_binary_cross_entropy", "binary_cross_entropy")
SUMMED_COSTS = (
    "softmax_cross_entropy",
    "safe_softmax_cross_entropy",
    "categorical_cross_entropy",
    "sigmoid_multilabel_cross_entropy",
    "multilabel_cross_entropy",
)


def _logit_values(points: int) -> np.ndarray:
    mags = np.geomspace(1e-5, 1e4, points)
    return np.concatenate([-mags[::-1], [0.0], mags, [np.inf, -np.inf]])


def _prob_values(points: int, dtype: np.dtype) -> np.ndarray:
    small = np.geomspace(1e-30, 0.5, points)
    near_one = 1.0 - np.geomspace(1e-7, 0.5, points // 2)
    return np.concatenate([[0.0], small, near_one, [1.0]]).astype(dtype)


def _softmax_rows(points: int, dtype: np.dtype, rng: np.random.Generator) -> list[np.ndarray]:
    rows = []
    for t in np.geomspace(1e-5, 1e4, points):
        base = np.array([t, 0.0, -t, t / 2])
        rows += [base, -base]
    for classes in (2, 10, 128):  # the gradient's 4-ulp bound holds on rows of up to 128 classes
        for scale in (1e-3, 1.0, 3.0, 30.0, 1e4):
            rows.append(rng.normal(size=classes) * scale)
    rows += [
        np.array([np.inf, 0.0, -1.0, 2.0]),
        np.array([-np.inf, 1.0, 0.0, -np.inf]),
        np.array([np.inf, np.inf, 0.0, -np.inf]),
    ]
    return [r.astype(dtype) for r in rows]


def _rounding_allowance(d: list[Any], p: list[Any], labels: Any, dtype: np.dtype) -> tuple[Any, list, list]:
    """What rounding each ``z_j - max z`` to ``dtype`` costs, to first order, absolutely.

    With :math:`r_j` the rounding error of :math:`d_j = z_j - \\max z` in ``dtype`` (0 where the
    difference is exact, as in rows ``[t, 0, -t, t/2]``) and :math:`R = \\sum_k p_k r_k`: the loss
    :math:`\\sum_j (y_j + p_j \\sum y) r_j`, the gradient element :math:`p_j \\sum y (r_j + R)` and
    the label gradient :math:`r_j + R`.
    """
    y = [_exact._m(v) for v in labels]
    cast = np.dtype(dtype).type
    with np.errstate(over="ignore"):
        rounded = [cast(float(v)) if mp.isfinite(v) else cast(0) for v in d]
    # A difference that overflows only feeds exp(), which gives 0 either way: no allowance.
    rounding = [abs(_exact._m(r) - v) if np.isfinite(r) else mp.mpf(0) for r, v in zip(rounded, d, strict=True)]
    spread = mp.fsum(pk * rk for pk, rk in zip(p, rounding, strict=True))
    label_sum = mp.fsum(y)
    loss = mp.fsum((yj + pj * label_sum) * rj for yj, pj, rj in zip(y, p, rounding, strict=True))
    grad = [pj * label_sum * (rj + spread) for pj, rj in zip(p, rounding, strict=True)]
    label = [rj + spread for rj in rounding]
    return loss, grad, label


def compute_dtype(dtype: Any) -> np.dtype:
    """float16 and bfloat16 are computed in float32."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if jnp.finfo(dtype).bits < 32 else dtype


def _per_element(parts: list[Any]) -> tuple[Any, list[Any], list[Any]]:
    """Sums element-wise exact results over a row (the multi-label costs)."""
    return mp.fsum(p[0] for p in parts), [p[1][0] for p in parts], [p[2][0] for p in parts]


def make_sweep(cost: str, labels: str, inputs: np.ndarray, targets: np.ndarray, dtype: Any) -> Sweep:
    """Computes the exact results of ``cost`` on ``inputs`` and ``targets`` in ``dtype``.

    Element-wise costs take 1-D inputs; the others take rows of shape (rows, classes). Integer
    targets are class ids. The probability clamp follows the input dtype, as the library does.
    """
    dtype = np.dtype(dtype)
    compute = compute_dtype(dtype)
    probs: list[Any] | None = None
    allowance: list[Any] | None = None
    if cost == "sigmoid_binary_cross_entropy":
        exact: list[Any] = [_exact.sigmoid(a, b) for a, b in zip(inputs, targets, strict=True)]
        probs = [[e[1][0] + _exact._m(t)] for e, t in zip(exact, targets, strict=True)]
    elif cost == "sigmoid_multilabel_cross_entropy":
        exact = [
            _per_element([_exact.sigmoid(a, b) for a, b in zip(zr, yr, strict=True)])
            for zr, yr in zip(inputs, targets, strict=True)
        ]
        probs = [
            [g + _exact._m(t) for g, t in zip(e[1], yr, strict=True)] for e, yr in zip(exact, targets, strict=True)
        ]
    elif cost.startswith(("softmax", "safe_softmax")):
        exact, probs, allowance = [], [], []
        for r, t in zip(inputs, targets, strict=True):
            onehot = np.eye(len(r), dtype=np.float64)[t] if labels == "integer" else t
            loss, grad, grad_labels = _exact.softmax(r, onehot)
            exact.append((loss, grad, None if labels == "integer" else grad_labels))
            d, p = _exact.softmax_parts(r)
            label_sum = mp.fsum(_exact._m(v) for v in onehot)
            probs.append([pj * label_sum for pj in p])  # the gradient's a * sum(y) term
            allowance.append(_rounding_allowance(d, p, onehot, compute))
    elif cost == "binary_cross_entropy":
        exact = [_exact.binary_probs(p, q, dtype) for p, q in zip(inputs, targets, strict=True)]
    elif cost == "multilabel_cross_entropy":
        exact = [
            _per_element([_exact.binary_probs(p, q, dtype) for p, q in zip(ar, yr, strict=True)])
            for ar, yr in zip(inputs, targets, strict=True)
        ]
    elif cost == "categorical_cross_entropy":
        exact = [_exact.categorical_probs(p, q, dtype) for p, q in zip(inputs, targets, strict=True)]
    else:
        raise ValueError(f"unknown cost {cost!r}")
    return Sweep(cost, labels, inputs, targets, exact, probs, allowance)


def _labels(rng: np.random.Generator, kind: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if kind == "hard":
        return rng.integers(0, 2, shape).astype(dtype)
    raw = rng.random(shape) + 0.05
    if len(shape) > 1:
        raw = raw / raw.sum(-1, keepdims=True)
    return raw.astype(dtype)


@dataclass(frozen=True)
class Draw:
    """The inputs of one sweep, drawn before their exact results are computed."""

    cost: str
    labels: str  # "hard", "soft" or "integer"
    inputs: np.ndarray
    targets: np.ndarray


def _selected(costs: Collection[str] | None, cost: str, labels: str, inputs: Any, targets: Any) -> Iterator[Draw]:
    """The draw of ``cost`` if ``costs`` selects it; the inputs are drawn either way, so that a
    selection sees the same rows as a whole run."""
    if costs is None or cost in costs:
        yield Draw(cost, labels, np.asarray(inputs), np.asarray(targets))


def draws(dtype: np.dtype, points: int, seed: int = 0, costs: Collection[str] | None = None) -> Iterator[Draw]:
    """The inputs of every (cost, labels) sweep in ``dtype`` (only those of ``costs`` if given);
    :func:`make_sweep` computes their exact results."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    z = np.repeat(_logit_values(points).astype(dtype), 2)
    finite = z[np.isfinite(z)]
    rows = _softmax_rows(points, dtype, rng)
    a = np.repeat(_prob_values(points, dtype), 2)
    for labels in ("hard", "soft"):
        y = np.tile([0.0, 1.0], len(z) // 2).astype(dtype) if labels == "hard" else _labels(rng, "soft", z.shape, dtype)
        yield from _selected(costs, "sigmoid_binary_cross_entropy", labels, z, y)
        n = len(finite) // 4 * 4
        ym = y[np.isfinite(z)][:n].reshape(-1, 4)
        yield from _selected(costs, "sigmoid_multilabel_cross_entropy", labels, finite[:n].reshape(-1, 4), ym)
    for cost, labels in (
        ("softmax_cross_entropy_with_integer_labels", "integer"),
        ("softmax_cross_entropy", "hard"),
        ("softmax_cross_entropy", "soft"),
    ):
        for width in sorted({len(r) for r in rows}):
            xs, ts = [], []
            for r in (r for r in rows if len(r) == width):
                choices = np.flatnonzero(r != -np.inf)[:4] if labels != "soft" else [None]
                for choice in choices:
                    t: Any
                    if labels == "soft":
                        t = _labels(rng, "soft", (width,), dtype)
                        t[r == -np.inf] = 0
                    else:
                        t = choice if labels == "integer" else np.eye(width, dtype=dtype)[choice]
                    xs.append(r)
                    ts.append(t)
            yield from _selected(costs, cost, labels, np.stack(xs), np.asarray(ts))
    for labels in ("hard", "soft"):
        y = np.tile([0.0, 1.0], len(a) // 2).astype(dtype) if labels == "hard" else _labels(rng, "soft", a.shape, dtype)
        yield from _selected(costs, "binary_cross_entropy", labels, a, y)
        n = len(a) // 4 * 4
        yield from _selected(costs, "multilabel_cross_entropy", labels, a[:n].reshape(-1, 4), y[:n].reshape(-1, 4))
        inner = a[1:-1:2]
        rest = ((1.0 - inner.astype(np.float64)) / 3).astype(dtype)
        cat = np.stack([inner, rest, rest, rest], axis=-1)
        onehot = np.tile(np.eye(4, dtype=dtype)[0], (len(cat), 1))
        yield from _selected(
            costs,
            "categorical_cross_entropy",
            labels,
            cat,
            onehot if labels == "hard" else _labels(rng, "soft", cat.shape, dtype),
        )


FUZZ_COSTS = (
    ("sigmoid_multilabel_cross_entropy", "hard"),
    ("sigmoid_multilabel_cross_entropy", "soft"),
    ("softmax_cross_entropy_with_integer_labels", "integer"),
    ("softmax_cross_entropy", "hard"),
    ("softmax_cross_entropy", "soft"),
    ("multilabel_cross_entropy", "soft"),
    ("categorical_cross_entropy", "soft"),
)


def random_rows(
    rng: np.random.Generator, cost: str, labels: str, rows: int, classes: int, dtype: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs for the fuzz test: scales from 1e-5 up to the dtype's largest number,
    ``-inf`` masks for the softmax, and probabilities down to 1e-30, 0 and 1."""
    dtype = np.dtype(dtype)
    shape = (rows, classes)
    if cost in ("multilabel_cross_entropy", "categorical_cross_entropy"):
        x = np.exp(rng.uniform(np.log(1e-30), 0.0, shape))
        x[rng.random(shape) < 0.05] = 0.0
        x[rng.random(shape) < 0.05] = 1.0
        if cost == "categorical_cross_entropy":
            x = x / np.maximum(x.sum(-1, keepdims=True), 1.0)
        return x.astype(dtype), _labels(rng, labels, shape, dtype)
    top = float(jnp.finfo(dtype).max)
    scale = np.exp(rng.uniform(np.log(1e-5), np.log(top / 4), (rows, 1)))
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    if cost.startswith("softmax"):
        x[rng.random(shape) < 0.1] = -np.inf
        x[:, 0] = np.where(np.isneginf(x).all(-1), 0.0, x[:, 0])
        if labels == "integer":
            choice = np.array([rng.choice(np.flatnonzero(~np.isneginf(r))) for r in x])
            return x, choice
        y = (
            _labels(rng, labels, shape, dtype)
            if labels == "soft"
            else np.eye(classes, dtype=dtype)[[rng.choice(np.flatnonzero(~np.isneginf(r))) for r in x]]
        )
        y[np.isneginf(x)] = 0
        return x, y
    return x, _labels(rng, labels, shape, dtype)


FUZZ_WIDTHS = (2, 3, 5, 16)


def fuzz_draws(
    examples: int,
    dtype: Any,
    seed: int = 0,
    costs: Collection[str] | None = None,
    widths: Sequence[int] = FUZZ_WIDTHS,
) -> Iterator[Draw]:
    """About ``examples`` random rows (each its own scale, mask and labels), spread over every
    fuzzed cost and width, one draw per cost and width."""
    rng = np.random.default_rng(seed)
    rows = max(1, examples // (len(FUZZ_COSTS) * len(widths)))
    for cost, labels in FUZZ_COSTS:
        for width in widths:
            x, y = random_rows(rng, cost, labels, rows, width, dtype)
            yield from _selected(costs, cost, labels, x, y)


# --- scoring ---------------------------------------------------------------------------


def _format(dtype: Any) -> tuple[int, int, float]:
    """(precision in bits, minimum normal exponent, largest finite) of a float dtype."""
    info = jnp.finfo(dtype)
    return int(info.nmant) + 1, int(info.minexp), float(info.max)


def ulp_error(computed: float, exact: Any, dtype: Any, allowance: Any = 0) -> float:
    """(|computed - exact| - allowance) in ulps of ``exact`` in ``dtype``; inf for a wrong non-finite result."""
    bits, min_exp, largest = _format(dtype)
    if mp.isnan(exact):
        return 0.0 if np.isnan(computed) else np.inf
    if mp.isinf(exact) or abs(exact) > largest:
        return 0.0 if np.isinf(computed) and np.sign(computed) == np.sign(float(exact)) else np.inf
    if not np.isfinite(computed):
        return np.inf
    if exact == 0:
        return 0.0 if computed == 0 else np.inf
    exponent = max(int(mp.floor(mp.log(abs(exact), 2))), min_exp)
    if exponent == min_exp and abs(exact) < mp.ldexp(1, min_exp) and computed == 0:
        return 0.0  # flushed below the smallest normal number
    return float(max(abs(mp.mpf(computed) - exact) - allowance, 0) / mp.ldexp(1, exponent - bits + 1))


def scaled_error(computed: float, exact: Any, scale: Any, dtype: Any, allowance: Any = 0) -> float:
    """(|computed - exact| - allowance) in units of eps * scale."""
    if not np.isfinite(computed):
        return np.inf
    eps = mp.ldexp(1, 1 - _format(dtype)[0])
    excess = max(abs(mp.mpf(computed) - exact) - allowance, 0)
    return float(excess / (eps * max(scale, mp.ldexp(1, _format(dtype)[1]))))


@dataclass
class Score:
    """The worst errors of one implementation on one sweep."""

    loss: float
    grad: float
    label_grad: float
    nonfinite: int
    worst_input: list[float]
    row_errors: list[float]  # the worst finite loss or gradient error of each row, for plots


def evaluate(fn: Callable[..., jax.Array], sweep: Sweep | Draw, dtype: Any) -> tuple[np.ndarray, ...]:
    """Loss, input gradient and (floating labels) label gradient of ``fn`` on ``sweep``."""
    return evaluate_many([({"fn": fn}, sweep)], dtype)[0]["fn"]


def evaluate_many(
    jobs: Sequence[tuple[dict[str, Callable[..., jax.Array]], Sweep | Draw]], dtype: Any
) -> list[dict[str, tuple[np.ndarray, ...]]]:
    """:func:`evaluate` for several implementations on several sweeps, as one compiled program.

    XLA's CPU compiler spends a fixed time on each program beside its size, so one program
    compiles in a fraction of the time of one per implementation and sweep: measured on 2
    cores, 12 sweeps of 4 implementations in 7.0 s as one program, 11.0 s as 12.
    """

    def arrays(sweep: Sweep | Draw) -> tuple[jax.Array, jax.Array]:
        integer = sweep.labels == "integer"
        return jnp.asarray(sweep.inputs, dtype), jnp.asarray(sweep.targets, jnp.int32 if integer else dtype)

    def wide(a: jax.Array) -> np.ndarray:
        return np.asarray(a.astype(jnp.float32 if a.dtype != jnp.float64 else jnp.float64), np.float64)

    def all_grads(inputs: list[tuple[jax.Array, jax.Array]]) -> list[dict[str, Any]]:
        out = []
        for (fns, sweep), (a, b) in zip(jobs, inputs, strict=True):
            argnums = (0,) if sweep.labels == "integer" else (0, 1)
            grads = {}
            for name, fn in fns.items():

                def total(a: jax.Array, b: jax.Array, fn: Callable[..., jax.Array] = fn) -> Any:
                    loss = fn(a, b)
                    return jnp.sum(loss.astype(jnp.float32 if loss.dtype != jnp.float64 else loss.dtype)), loss

                grads[name] = jax.grad(total, argnums=argnums, has_aux=True)(a, b)
            out.append(grads)
        return out

    computed = jax.jit(all_grads)([arrays(sweep) for _, sweep in jobs])
    return [
        {name: (np.asarray(loss, np.float64), *(wide(g) for g in grads)) for name, (grads, loss) in job.items()}
        for job in computed
    ]


def score(results: tuple[np.ndarray, ...], sweep: Sweep, loss_dtype: Any, grad_dtype: Any) -> Score:
    """Scores ``results`` of :func:`evaluate` against ``sweep.exact``."""
    loss, grad = results[0], results[1]
    label_grad = results[2] if len(results) > 2 else None
    worst = Score(0.0, 0.0, 0.0, 0, [], [])
    worst_total = -1.0
    elementwise = sweep.inputs.ndim == 1
    for i, (e_loss, e_grad, e_label) in enumerate(sweep.exact):
        row_grad = [grad[i]] if elementwise else grad[i]
        width = len(row_grad)
        allow_loss, allow_grad, allow_label = (
            sweep.allowance[i] if sweep.allowance is not None else (0, [0] * width, [0] * width)
        )
        errs = [ulp_error(float(loss[i]), e_loss, loss_dtype, allow_loss)]
        grad_errs = []
        for j, (c, e) in enumerate(zip(row_grad, e_grad, strict=True)):
            if sweep.labels == "soft" and sweep.probs is not None:
                target = sweep.targets[i] if elementwise else sweep.targets[i][j]
                scale = max(abs(sweep.probs[i][j]), abs(_exact._m(target)))
                grad_errs.append(scaled_error(float(c), e, scale, grad_dtype, allow_grad[j]))
            else:
                grad_errs.append(ulp_error(float(c), e, grad_dtype, allow_grad[j]))
        label_errs = []
        if label_grad is not None and e_label is not None:
            row_label = [label_grad[i]] if elementwise else label_grad[i]
            label_errs = [
                ulp_error(float(c), e, grad_dtype, a) for c, e, a in zip(row_label, e_label, allow_label, strict=True)
            ]
        all_errs = errs + grad_errs + label_errs
        worst.nonfinite += sum(1 for err in all_errs if err == np.inf)
        finite_errs = [err for err in all_errs if err != np.inf]
        worst.row_errors.append(max(finite_errs, default=np.inf))
        worst.loss = max(worst.loss, errs[0] if errs[0] != np.inf else 0.0)
        worst.grad = max([worst.grad] + [g for g in grad_errs if g != np.inf])
        worst.label_grad = max([worst.label_grad] + [g for g in label_errs if g != np.inf])
        if finite_errs and max(finite_errs) > worst_total:
            worst_total = max(finite_errs)
            worst.worst_input = np.atleast_1d(sweep.inputs[i]).astype(np.float64).tolist()[:8]
    return worst
