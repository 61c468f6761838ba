"""The precision sweep of ``jaxloss verify``: errors in ulps against mpmath, side by side.

Inputs (``quick``; ``full`` uses more points):

* logits log-spaced over ±1e-5 … ±1e4, plus 0 and ±inf; rows ``[t, 0, -t, t/2]``, whose
  differences are exact, their mirror images, random rows of 2 to 100 classes at scales up to
  1e4, and rows with ``+inf`` and ``-inf`` entries;
* probabilities log-spaced from 1e-30 up to 1 - 1e-7, plus exactly 0 and 1;
* hard labels (0/1, one-hot, integer) and soft labels.

Scoring, with the inputs taken as exact: a loss, a gradient element or a label-gradient element
is scored in ulps of its exact value (a result whose exact value is below the smallest normal
number may flush to zero). Soft-label logit gradients :math:`a \\sum y - y` are scored in units
of :math:`\\epsilon \\max(|a|, |y|)`. A non-finite result where the exact one is finite and
representable counts as a failure. Softmax costs are scored against the exact cost of
``z - max z`` as the dtype rounds it (the same as the exact cost when those differences are
exact), which is the best any float computation of a softmax can do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np

from jaxloss import _exact

TARGET_ULPS = 2.0
SUM_TARGET_ULPS = 4.0  # soft-label sums over classes


@dataclass(frozen=True)
class Sweep:
    """Inputs for one cost and one kind of labels, with their exact results."""

    cost: str
    labels: str  # "hard", "soft" or "integer"
    inputs: np.ndarray  # (rows, classes) or (n,) for element-wise costs
    targets: np.ndarray
    exact: list[Any]  # per row (or element): (loss, input gradient, label gradient or None)
    probs: list[list[Any]] | None  # exact activations, for scoring soft-label logit gradients
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
    for classes in (2, 10, 100):
        for scale in (1e-3, 1.0, 30.0, 1e4):
            rows.append(rng.normal(size=classes) * scale)
    rows += [
        np.array([np.inf, 0.0, -1.0, 2.0]),
        np.array([-np.inf, 1.0, 0.0, -np.inf]),
        np.array([np.inf, np.inf, 0.0, -np.inf]),
    ]
    return [r.astype(dtype) for r in rows]


def _rounding_allowance(d: list[Any], p: list[Any], labels: np.ndarray, dtype: np.dtype) -> tuple[Any, list, list]:
    """What rounding each ``z_j - max z`` to ``dtype`` may cost, to first order, absolutely.

    With :math:`h = \\epsilon/2` and :math:`D = \\sum_k p_k |d_k|`: the loss
    :math:`h \\sum_j (y_j + p_j \\sum y)|d_j|`, the gradient element
    :math:`h\\, p_j \\sum y\\, (|d_j| + D)` and the label gradient :math:`h (|d_j| + D)`.
    """
    half_eps = mp.ldexp(1, -int(jnp.finfo(dtype).nmant) - 1)
    y = [_exact._m(v) for v in labels]
    mag = [mp.mpf(0) if v == -mp.inf else abs(v) for v in d]
    spread = mp.fsum(pk * dk for pk, dk in zip(p, mag, strict=True))
    label_sum = mp.fsum(y)
    loss = half_eps * mp.fsum((yj + pj * label_sum) * dj for yj, pj, dj in zip(y, p, mag, strict=True))
    grad = [half_eps * pj * label_sum * (dj + spread) for pj, dj in zip(p, mag, strict=True)]
    label = [half_eps * (dj + spread) for dj in mag]
    return loss, grad, label


def _soft(rng: np.random.Generator, n: int, dtype: np.dtype) -> np.ndarray:
    raw = rng.random(n) + 0.05
    return (raw / raw.sum()).astype(dtype)


def compute_dtype(dtype: Any) -> np.dtype:
    """float16 and bfloat16 are computed in float32."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if jnp.finfo(dtype).bits < 32 else dtype


def sweeps(dtype: np.dtype, points: int, seed: int = 0) -> Iterator[Sweep]:
    """Every (cost, labels) sweep in ``dtype``, with exact results."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    compute = compute_dtype(dtype)
    z = _logit_values(points).astype(dtype)
    for labels in ("hard", "soft"):
        y = np.tile([0.0, 1.0], len(z)).astype(dtype) if labels == "hard" else rng.random(2 * len(z)).astype(dtype)
        zz = np.repeat(z, 2)
        exact: list[Any] = [_exact.sigmoid(a, b) for a, b in zip(zz, y, strict=True)]
        probs = [[e[1][0] + _exact._m(t)] for e, t in zip(exact, y, strict=True)]
        yield Sweep("sigmoid_binary_cross_entropy", labels, zz, y, exact, probs)
        finite = np.isfinite(zz)
        rows, cols = (finite.sum() // 4, 4)
        zm, ym = zz[finite][: rows * cols].reshape(rows, cols), y[finite][: rows * cols].reshape(rows, cols)
        exact_rows = []
        for zr, yr in zip(zm, ym, strict=True):
            parts = [_exact.sigmoid(a, b) for a, b in zip(zr, yr, strict=True)]
            exact_rows.append((mp.fsum(p[0] for p in parts), [p[1][0] for p in parts], [p[2][0] for p in parts]))
        probs = [
            [g + _exact._m(t) for g, t in zip(e[1], yr, strict=True)] for e, yr in zip(exact_rows, ym, strict=True)
        ]
        yield Sweep("sigmoid_multilabel_cross_entropy", labels, zm, ym, exact_rows, probs)

    rows = _softmax_rows(points, dtype, rng)
    for cost, labels in (
        ("softmax_cross_entropy_with_integer_labels", "integer"),
        ("softmax_cross_entropy", "hard"),
        ("softmax_cross_entropy", "soft"),
    ):
        for width in sorted({len(r) for r in rows}):
            block = [r for r in rows if len(r) == width]
            xs, ts, probs, allowance = [], [], [], []
            exact = []
            for r in block:
                finite = np.flatnonzero(r != -np.inf)
                choices = finite if labels != "soft" else [None]
                for choice in choices[:4] if width > 4 else choices:
                    if labels == "soft":
                        t = _soft(rng, width, dtype)
                        t[r == -np.inf] = 0
                    else:
                        t = np.eye(width, dtype=dtype)[choice]
                    ex = _exact.softmax(r, t)
                    xs.append(r)
                    ts.append(choice if labels == "integer" else t)
                    exact.append(ex if labels != "integer" else (ex[0], ex[1], None))
                    d, p = _exact.softmax_parts(r)
                    probs.append(p)
                    allowance.append(_rounding_allowance(d, p, t, compute))
            yield Sweep(cost, labels, np.stack(xs), np.asarray(ts), exact, probs, allowance)

    a = _prob_values(points, dtype)
    for labels in ("hard", "soft"):
        aa = np.repeat(a, 2)
        y = np.tile([0.0, 1.0], len(a)).astype(dtype) if labels == "hard" else rng.random(2 * len(a)).astype(dtype)
        yield Sweep(
            "binary_cross_entropy",
            labels,
            aa,
            y,
            [_exact.binary_probs(p, q, compute) for p, q in zip(aa, y, strict=True)],
            None,
        )
        n = len(aa) // 4 * 4
        am, ym = aa[:n].reshape(-1, 4), y[:n].reshape(-1, 4)
        exact_rows = []
        for ar, yr in zip(am, ym, strict=True):
            parts = [_exact.binary_probs(p, q, compute) for p, q in zip(ar, yr, strict=True)]
            exact_rows.append((mp.fsum(p[0] for p in parts), [p[1][0] for p in parts], [p[2][0] for p in parts]))
        yield Sweep("multilabel_cross_entropy", labels, am, ym, exact_rows, None)
        cat_rows, cat_labels = [], []
        for r in a[1:-1]:
            rest = (1.0 - float(r)) / 3
            cat_rows.append(np.array([r, rest, rest, rest], dtype))
            cat_labels.append(np.eye(4, dtype=dtype)[0] if labels == "hard" else _soft(rng, 4, dtype))
        cat_x, cat_y = np.stack(cat_rows), np.stack(cat_labels)
        yield Sweep(
            "categorical_cross_entropy",
            labels,
            cat_x,
            cat_y,
            [_exact.categorical_probs(p, q, compute) for p, q in zip(cat_x, cat_y, strict=True)],
            None,
        )


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


def evaluate(fn: Callable[..., jax.Array], sweep: Sweep, dtype: Any) -> tuple[np.ndarray, ...]:
    """Loss, input gradient and (floating labels) label gradient of ``fn`` on ``sweep``."""
    x = jnp.asarray(sweep.inputs, dtype)
    integer = sweep.labels == "integer"
    y = jnp.asarray(sweep.targets, jnp.int32 if integer else dtype)
    argnums = (0,) if integer else (0, 1)

    def total(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
        loss = fn(a, b)
        return jnp.sum(loss.astype(jnp.float32 if loss.dtype != jnp.float64 else loss.dtype)), loss

    grads, loss = jax.jit(jax.grad(total, argnums=argnums, has_aux=True))(x, y)
    out = [
        np.asarray(loss, np.float64),
        np.asarray(grads[0].astype(np.float32 if grads[0].dtype != jnp.float64 else jnp.float64), np.float64),
    ]
    if not integer:
        out.append(np.asarray(grads[1].astype(jnp.float32 if grads[1].dtype != jnp.float64 else jnp.float64)))
    return tuple(out)


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
