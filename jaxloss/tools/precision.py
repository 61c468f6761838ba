"""The precision sweep of ``jaxloss verify``: errors in ulps against mpmath, side by side.

Inputs (``quick``; ``full`` uses more points):

* logits log-spaced over ±1e-5 … ±1e4, plus 0 and ±inf; rows ``[t, 0, -t, t/2]``, whose
  differences are exact, their mirror images, random rows of 2, 10 and 128 classes at scales up to
  1e4, and rows with ``+inf`` and ``-inf`` entries;
* probabilities log-spaced from 1e-30 up to 1 - 1e-7, plus exactly 0 and 1;
* hard labels (0/1, one-hot, integer) and soft labels;
* the focal loss on the logit sweep with hard and soft labels, at gamma 2, gamma 0.5 (the
  infinite slope of :math:`(1 - p_t)^\\gamma` at :math:`p_t = 1`) and gamma 2 with alpha 0.25
  (``full``: also gamma 3.3, alpha 0.75); the poly-1 loss on the softmax rows of 4 and 128
  classes (``full``: every width) with one-hot and soft labels at epsilon 2 and -1; the two KL
  divergences on rows of 5 classes: targets with exact zeros (``-inf`` log-targets) against
  ``-inf`` and finite log-predictions, matching rows (``log_predictions = jnp.log(targets)``,
  ``log_targets == log_predictions``), nearly matching rows and confident rows. Rows that one
  compiled sweep holds are scored apart (:class:`Part`), one line each.

Scoring, with the inputs taken as exact: a loss, a gradient element or a label-gradient element
is scored in ulps of its exact value (a result whose exact value is below the smallest normal
number may flush to zero). Soft-label logit gradients :math:`a \\sum y - y` are scored in units
of :math:`\\epsilon \\max(|a \\sum y|, |y|)` (the issue's :math:`\\epsilon \\max(|a|, |y|)` when the
labels sum to one). Likewise a value that is a genuine sum of terms of opposite signs is scored
in units of :math:`\\epsilon` times the sum of the magnitudes of its terms (``Sweep.scales``):
the focal loss's soft-label logit gradient and, with ``alpha``, its label gradient
(:func:`exact.focal_scales`); the poly-1 loss's soft-label logit gradient, and its label
gradient and loss for :math:`\\epsilon < 0` where :math:`p_j < 1/2` (:func:`exact.poly_scales`);
the KL sums over classes and their target gradients (:func:`exact.kl_scales`). The hard-label
focal loss and gradients, and every other value, are in ulps. A non-finite result where the
exact one is finite and representable counts as a failure. Softmax costs are scored against the
exact cost of ``z - max z`` as the dtype rounds it (the same as the exact cost when those
differences are exact), which is the best any float computation of a softmax can do.

Subnormal numbers: no flush is assumed. Where the platform that runs the sweep reads a subnormal
input as 0 (:func:`reads_subnormals_as_zero`, probed at run time: XLA-CPU does, XLA-GPU does
not), the exact results are those of the inputs as it reads them, subnormal inputs as 0;
elsewhere those of the inputs as drawn. Intermediate values are never assumed flushed: a
subnormal :math:`t = e^{\\log t}` counts with all its digits, and so does a KL term below the
smallest normal number, except where the platform flushes such results to 0
(:func:`flushes_subnormal_results`, probed likewise): there the sum over classes may lose each
of them (an allowance of their magnitudes).
"""

from __future__ import annotations

import functools
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
    options: tuple[tuple[str, Any], ...] = ()  # the cost's hyperparameters, as keyword arguments
    # Per row (or element): (loss, input-gradient, label-gradient) scales, each None or per class
    # None where that value is scored in ulps; otherwise in units of eps * scale (scaled_error).
    scales: list[tuple[Any, list[Any], list[Any]]] | None = None

    @property
    def loss_target(self) -> float:
        summed = self.cost in SUMMED_COSTS and self.labels == "soft"
        # Poly-1's loss is a sum of two rounded terms, -log p and eps (1 - p), and for eps < 0 at a
        # confident class (1 - p)^2/2, which doubles the rounding of the row's sum T (3.3 ulp
        # measured in float32): it takes the bound of the sums, hard labels too.
        if summed or self.cost == "poly_loss_cross_entropy":
            return SUM_TARGET_ULPS
        return TARGET_ULPS


ELEMENTWISE_COSTS = ("sigmoid_binary_cross_entropy", "binary_cross_entropy", "sigmoid_focal_loss")
SUMMED_COSTS = (
    "softmax_cross_entropy",
    "safe_softmax_cross_entropy",
    "categorical_cross_entropy",
    "sigmoid_multilabel_cross_entropy",
    "multilabel_cross_entropy",
    "poly_loss_cross_entropy",
    "kl_divergence",
    "kl_divergence_with_log_targets",
)
# The hyperparameters of the sweeps: gamma 0.5 is the infinite slope of (1 - p_t)^gamma at
# p_t = 1; alpha 0.75 > 2/3 (with extended) flips the sign of the label gradient's limit at
# z = +inf, y = 0. Each setting is one more compiled sweep per implementation.
FOCAL_SETTINGS: tuple[tuple[tuple[str, Any], ...], ...] = (
    (("gamma", 2.0),),
    (("gamma", 0.5),),
    (("gamma", 2.0), ("alpha", 0.25)),
)
FOCAL_SETTINGS_FULL = (*FOCAL_SETTINGS, (("gamma", 3.3), ("alpha", 0.75)))  # gamma rounded in float32
POLY_SETTINGS: tuple[tuple[tuple[str, Any], ...], ...] = ((("epsilon", 2.0),), (("epsilon", -1.0),))
POLY_QUICK_WIDTHS = (4,)
KL_SETTINGS = ("zeros", "matching", "near", "confident")
KL_WIDTH = 5


def setting_name(options: Sequence[tuple[str, Any]]) -> str:
    """``(("gamma", 2.0), ("alpha", 0.25))`` as ``"gamma 2, alpha 0.25"``."""
    return ", ".join(f"{name} {value:g}" for name, value in options)


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


def _roundings(d: Sequence[Any], dtype: np.dtype) -> list[Any]:
    """The rounding error :math:`r_j` of each :math:`d_j = z_j - \\max z` in ``dtype``."""
    cast = np.dtype(dtype).type
    with np.errstate(over="ignore"):
        rounded = [cast(float(v)) if mp.isfinite(v) else cast(0) for v in d]
    # A difference that overflows only feeds exp(), which gives 0 either way: no allowance.
    return [abs(_exact._m(r) - v) if np.isfinite(r) else mp.mpf(0) for r, v in zip(rounded, d, strict=True)]


def _rounding_allowance(d: list[Any], p: list[Any], labels: Any, dtype: np.dtype) -> tuple[Any, list, list]:
    """What rounding each ``z_j - max z`` to ``dtype`` costs, to first order, absolutely.

    With :math:`r_j` the rounding error of :math:`d_j = z_j - \\max z` in ``dtype`` (0 where the
    difference is exact, as in rows ``[t, 0, -t, t/2]``) and :math:`R = \\sum_k p_k r_k`: the loss
    :math:`\\sum_j (y_j + p_j \\sum y) r_j`, the gradient element :math:`p_j \\sum y (r_j + R)` and
    the label gradient :math:`r_j + R`.
    """
    y = [_exact._m(v) for v in labels]
    rounding = _roundings(d, dtype)
    spread = mp.fsum(pk * rk for pk, rk in zip(p, rounding, strict=True))
    label_sum = mp.fsum(y)
    loss = mp.fsum((yj + pj * label_sum) * rj for yj, pj, rj in zip(y, p, rounding, strict=True))
    grad = [pj * label_sum * (rj + spread) for pj, rj in zip(p, rounding, strict=True)]
    label = [rj + spread for rj in rounding]
    return loss, grad, label


def _poly_allowance(logits: np.ndarray, labels: Any, epsilon: Any, dtype: np.dtype) -> tuple[Any, list, list]:
    """:func:`_rounding_allowance` for the poly-1 loss, with :math:`c_j = 1 + \\epsilon p_j`.

    A perturbation :math:`r` of the differences moves :math:`p_k` by at most
    :math:`p_k (r_k + R)`. So the loss moves by at most :math:`\\sum_k (p_k \\sum_j y_j |c_j| +
    y_k |c_k|) r_k`, the gradient element :math:`p_k \\sum_j y_j c_j - y_k c_k` by
    :math:`p_k (r_k + R)(|\\sum_j y_j c_j| + y_k |\\epsilon|) + p_k |\\epsilon| \\sum_j y_j p_j
    (r_j + R)` and the label gradient :math:`\\phi_j` by :math:`(1 + |\\epsilon| p_j)(r_j + R)`;
    with :math:`\\epsilon = 0` these are those of the cross-entropy.
    """
    y = [_exact._m(v) for v in labels]
    eps = abs(_exact._m(epsilon))
    d, p, _, _, c = _exact.poly_parts(logits, epsilon)
    rounding = _roundings(d, dtype)
    spread = mp.fsum(pk * rk for pk, rk in zip(p, rounding, strict=True))
    total = abs(mp.fsum(yj * cj for yj, cj in zip(y, c, strict=True)))
    magnitude = mp.fsum(yj * abs(cj) for yj, cj in zip(y, c, strict=True))
    moved = mp.fsum(yj * pj * (rj + spread) for yj, pj, rj in zip(y, p, rounding, strict=True))
    loss = mp.fsum((pk * magnitude + yk * abs(ck)) * rk for pk, yk, ck, rk in zip(p, y, c, rounding, strict=True))
    grad = [
        pk * (rk + spread) * (total + yk * eps) + pk * eps * moved for pk, yk, rk in zip(p, y, rounding, strict=True)
    ]
    label = [(1 + eps * pj) * (rj + spread) for pj, rj in zip(p, rounding, strict=True)]
    return loss, grad, label


def compute_dtype(dtype: Any) -> np.dtype:
    """float16 and bfloat16 are computed in float32."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if jnp.finfo(dtype).bits < 32 else dtype


@functools.cache
def reads_subnormals_as_zero(dtype: Any) -> bool:
    """Whether the default backend reads a subnormal ``dtype`` input as 0 (denormals-are-zero).

    Probed with a compiled product :math:`(\\text{tiny}/2) \\cdot 4`, whose exact result is normal:
    XLA-CPU gives 0 (in float32 and float64), XLA-GPU ``2 tiny``.
    """
    dtype = np.dtype(dtype)
    with jax.enable_x64(dtype == np.float64):
        half_tiny = np.asarray(jnp.finfo(dtype).smallest_normal / 2, dtype)
        product = jax.jit(lambda a, b: a * b)(half_tiny, np.asarray(4.0, dtype))
        return bool(product == 0)


@functools.cache
def flushes_subnormal_results(dtype: Any) -> bool:
    """Whether the default backend flushes a subnormal ``dtype`` result to 0 (flush-to-zero).

    Probed with a compiled product :math:`\\text{tiny} \\cdot \\tfrac12`: XLA-CPU gives 0, XLA-GPU
    ``tiny / 2`` (0 in float32 under ``--xla_gpu_ftz=true``).
    """
    dtype = np.dtype(dtype)
    with jax.enable_x64(dtype == np.float64):
        tiny = np.asarray(jnp.finfo(dtype).smallest_normal, dtype)
        product = jax.jit(lambda a, b: a * b)(tiny, np.asarray(0.5, dtype))
        return bool(product == 0)


def _as_read(values: Any, compute: np.dtype) -> Any:
    """``values`` as the platform reads them in ``compute``: subnormal entries as 0 where it flushes them."""
    values = np.asarray(values)
    if not jnp.issubdtype(values.dtype, jnp.floating) or not reads_subnormals_as_zero(compute):
        return values
    tiny = float(jnp.finfo(compute).smallest_normal)
    wide = values.astype(np.float64)
    return np.where(np.abs(wide) < tiny, np.copysign(0.0, wide), values).astype(values.dtype)


def _per_element(parts: list[Any]) -> tuple[Any, list[Any], list[Any]]:
    """Sums element-wise exact results over a row (the multi-label costs)."""
    return mp.fsum(p[0] for p in parts), [p[1][0] for p in parts], [p[2][0] for p in parts]


def _rounded(value: Any, dtype: np.dtype) -> float:
    """A float hyperparameter as ``dtype`` rounds it (the library converts it to the compute dtype)."""
    return float(np.dtype(dtype).type(value))


def make_sweep(
    cost: str,
    labels: str,
    inputs: np.ndarray,
    targets: np.ndarray,
    dtype: Any,
    options: Sequence[tuple[str, Any]] = (),
) -> Sweep:
    """Computes the exact results of ``cost`` on ``inputs`` and ``targets`` in ``dtype``.

    Element-wise costs take 1-D inputs; the others take rows of shape (rows, classes). Integer
    targets are class ids. The probability clamp follows the input dtype, as the library does.
    ``options`` are the cost's keyword arguments (the focal loss's ``gamma`` and ``alpha``, the
    poly-1 loss's ``epsilon``), taken as the compute dtype rounds them.
    """
    dtype = np.dtype(dtype)
    compute = compute_dtype(dtype)
    settings = dict(options)
    drawn = inputs, targets
    inputs, targets = _as_read(inputs, compute), _as_read(targets, compute)  # the exact results' inputs
    probs: list[Any] | None = None
    allowance: list[Any] | None = None
    scales: list[Any] | None = None
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
    elif cost == "sigmoid_focal_loss":
        gamma, alpha = _rounded(settings.get("gamma", 2.0), compute), settings.get("alpha")
        alpha = None if alpha is None else _rounded(alpha, compute)
        exact = [_exact.focal(a, b, gamma, alpha) for a, b in zip(inputs, targets, strict=True)]
        # Hard labels (0 or 1): one sign in each bracket, in ulps; the alpha term has its own.
        scales = []
        for a, b in zip(inputs, targets, strict=True):
            _, grad_scale, label_scale = _exact.focal_scales(a, b, gamma, alpha)
            soft = b not in (0, 1)
            scales.append((None, grad_scale if soft else [None], label_scale if alpha is not None else [None]))
    elif cost == "poly_loss_cross_entropy":
        epsilon = _rounded(settings.get("epsilon", 2.0), compute)
        exact = [_exact.poly(r, t, epsilon) for r, t in zip(inputs, targets, strict=True)]
        allowance = [_poly_allowance(r, t, epsilon, compute) for r, t in zip(inputs, targets, strict=True)]
        scales = []
        for r, t in zip(inputs, targets, strict=True):
            loss_scale, grad_scale, label_scale = _exact.poly_scales(r, t, epsilon)
            onehot = bool(np.all((t == 0) | (t == 1)) and np.sum(t) == 1)  # the gradient in ulps
            scales.append((loss_scale, [None] * len(r) if onehot else grad_scale, label_scale))
    elif cost in ("kl_divergence", "kl_divergence_with_log_targets"):
        log = cost == "kl_divergence_with_log_targets"
        exact = [_exact.kl(x, t, log) for x, t in zip(inputs, targets, strict=True)]
        scales = [_exact.kl_scales(x, t, log) for x, t in zip(inputs, targets, strict=True)]
        if flushes_subnormal_results(compute):
            # A term below the smallest normal number is a result that the platform flushes to 0.
            tiny = _exact._m(jnp.finfo(compute).smallest_normal)
            allowance = []
            for x, t in zip(inputs, targets, strict=True):
                terms = _exact.kl_terms(x, t, log)[0]
                flushed = mp.fsum(abs(v) for v in terms if mp.isfinite(v) and abs(v) < tiny)
                allowance.append((flushed, [0] * len(terms), [0] * len(terms)))
    else:
        raise ValueError(f"unknown cost {cost!r}")
    return Sweep(cost, labels, *drawn, exact, probs, allowance, tuple(options), scales)


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
    options: tuple[tuple[str, Any], ...] = ()  # keyword arguments of the cost
    setting: str = ""  # what the rows are, beside the labels: "gamma 0.5", "matching"
    parts: tuple[Part, ...] = ()  # rows scored apart (none: all rows, as labels and setting)

    @property
    def tag(self) -> str:
        """The labels and the setting: ``"hard, gamma 0.5"``."""
        return _tag(self.labels, self.setting)


@dataclass(frozen=True)
class Part:
    """Rows ``start:stop`` of a draw, scored as one line of the table: one compiled sweep can
    hold hard and soft labels (XLA's compile time grows with the number of sweeps)."""

    labels: str
    setting: str
    start: int
    stop: int

    @property
    def tag(self) -> str:
        return _tag(self.labels, self.setting)


def _tag(labels: str, setting: str) -> str:
    return ", ".join(part for part in (labels, setting) if part)


def parts_of(draw: Draw) -> tuple[Part, ...]:
    """The parts of ``draw``: its own, or one covering every row."""
    return draw.parts or (Part(draw.labels, draw.setting, 0, len(draw.inputs)),)


def subset(sweep: Sweep, part: Part) -> Sweep:
    """The rows of ``part`` of ``sweep``, with the part's labels."""
    rows = slice(part.start, part.stop)

    def cut(values: Any) -> Any:
        return None if values is None else values[rows]

    return Sweep(
        sweep.cost,
        part.labels,
        sweep.inputs[rows],
        sweep.targets[rows],
        sweep.exact[rows],
        cut(sweep.probs),
        cut(sweep.allowance),
        sweep.options,
        cut(sweep.scales),
    )


def _selected(
    costs: Collection[str] | None,
    cost: str,
    labels: str,
    inputs: Any,
    targets: Any,
    options: tuple[tuple[str, Any], ...] = (),
    setting: str | None = None,
    parts: Sequence[tuple[str, int]] = (),
) -> Iterator[Draw]:
    """The draw of ``cost`` if ``costs`` selects it; the inputs are drawn either way, so that a
    selection sees the same rows as a whole run. ``setting`` defaults to the options' names;
    ``parts`` are consecutive ``(labels, rows)`` blocks, scored apart."""
    if costs is None or cost in costs:
        name = setting_name(options) if setting is None else setting
        blocks, start = [], 0
        for part_labels, count in parts:
            blocks.append(Part(part_labels, name, start, start + count))
            start += count
        yield Draw(cost, labels, np.asarray(inputs), np.asarray(targets), tuple(options), name, tuple(blocks))


def draws(
    dtype: np.dtype, points: int, seed: int = 0, costs: Collection[str] | None = None, extended: bool = False
) -> Iterator[Draw]:
    """The inputs of every (cost, labels) sweep in ``dtype`` (only those of ``costs`` if given;
    ``extended``: the settings of ``--full`` too); :func:`make_sweep` computes their exact results."""
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
    yield from _new_draws(dtype, points, z, rows, seed, costs, extended)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    """log softmax along the last axis, in float64 (``-inf`` entries stay ``-inf``)."""
    top = np.max(x, axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        return x - top - np.log(np.sum(np.exp(x - top), axis=-1, keepdims=True))


def _log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(x)


def _kl_rows(setting: str, points: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float64 rows ``(log predictions, targets, log targets)`` of width ``KL_WIDTH`` for one setting.

    * ``zeros``: random targets with exact zeros, predictions at scales 0.3 to 30 with ``-inf``
      at some zero targets; and rows with a ``-inf`` prediction at a positive target (+inf), a
      one-hot target against log-predictions down to -1e30, and a target of 1e-30;
    * ``matching``: random targets with exact zeros; :func:`_kl_draws` makes the predictions equal;
    * ``near``: predictions :math:`t e^{\\delta n}` renormalised, :math:`\\delta` from 1e-6 to 0.3;
    * ``confident``: targets :math:`\\mathrm{softmax}(u)`, :math:`u = s [1, 0, -1, 1/2, -1/2]`,
      :math:`s` from 1 to 1e4 (targets that underflow, log-targets to -1.5e4), against the
      predictions of :math:`1.05 u` and of :math:`-u`, and one-hot targets against :math:`1.05 u`;
      and two rows of subnormal targets (log-targets -95 to -99, and -720 to -745) against
      log-predictions far enough below that the terms and label gradients are normal in float32
      and in float64 respectively.
    """
    width = KL_WIDTH
    raw = rng.random((points, width))
    if setting in ("zeros", "matching"):
        raw[rng.random((points, width)) < 0.4] = 0.0
        raw[raw.sum(-1) == 0, 0] = 1.0
    t = raw / raw.sum(-1, keepdims=True)
    scale = np.array([0.3, 3.0, 30.0])[np.arange(points) % 3, None]
    lp = _log_softmax(rng.normal(size=(points, width)) * scale)
    if setting == "zeros":
        lp = np.where((t == 0) & (rng.random((points, width)) < 0.5), -np.inf, lp)
        half = np.log(0.5)
        special_lp = np.array(
            [
                [-np.inf, half, np.log(0.25), np.log(0.25), -np.inf],
                [-1e-7, -17.0, -np.inf, -1e4, -1e30],
                [-100.0, half, half, -np.inf, 0.0],
            ]
        )
        special_t = np.array([[0.5, 0.5, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0], [1e-30, 0.5, 0.5 - 1e-30, 0, 0]])
        lp, t = np.concatenate([lp, special_lp]), np.concatenate([t, special_t])
        lt = _log(t)
        # A log-target whose probability underflows, against a -inf prediction: +inf.
        lt[points, 0] = -1e4
    elif setting == "near":
        delta = np.geomspace(1e-6, 0.3, points)[:, None]
        p = t * np.exp(delta * rng.normal(size=t.shape))
        lp, lt = np.log(p / p.sum(-1, keepdims=True)), np.log(t)
    elif setting == "confident":
        s = np.geomspace(1.0, 1e4, points)[:, None]
        u = s * np.array([1.0, 0.0, -1.0, 0.5, -0.5])
        lt = np.concatenate([_log_softmax(u), _log_softmax(u), np.tile(_log(np.eye(width)[0]), (points, 1))])
        lp = np.concatenate([_log_softmax(1.05 * u), _log_softmax(-u), _log_softmax(1.05 * u)])
        subnormal_lt = np.array([[-95.0, -96.0, -97.0, -98.0, -99.0], [-720.0, -725.0, -730.0, -740.0, -745.0]])
        subnormal_lp = np.array([[-3e3, -1e4, -5e3, -3e4, -1e5], [-1e6, -1e7, -1e8, -1e9, -1e10]])
        lt, lp = np.concatenate([lt, subnormal_lt]), np.concatenate([lp, subnormal_lp])
        t = np.exp(lt)
    else:
        lt = _log(t)
    return lp, t, lt


def _kl_draws(points: int, dtype: np.dtype, rng: np.random.Generator, costs: Collection[str] | None) -> Iterator[Draw]:
    """The draws of both KL costs (:func:`_kl_rows`), in ``dtype``: one sweep each, a part a setting.

    ``matching`` rows are exact: the log-predictions are ``jnp.log(targets)`` (in the compute
    dtype, as the library takes the logarithm) and the log-targets equal the log-predictions,
    ``-inf`` entries included.
    """
    rows: dict[str, list[np.ndarray]] = {"lp": [], "t": [], "lp_log": [], "lt": []}
    for setting in KL_SETTINGS:
        lp, t, lt = _kl_rows(setting, points, rng)
        with np.errstate(over="ignore"):
            lp, t, lt = lp.astype(dtype), t.astype(dtype), lt.astype(dtype)
        if setting == "matching":
            with jax.enable_x64(True):
                lp = np.asarray(jnp.log(jnp.asarray(t, compute_dtype(dtype)))).astype(dtype)
            lt = lp
        lp_log = lp
        for key, value in (("lp", lp), ("t", t), ("lp_log", lp_log), ("lt", lt)):
            rows[key].append(value)
    blocks = [("soft", len(t)) for t in rows["t"]]
    joined = {key: np.concatenate(value) for key, value in rows.items()}
    for cost, x, y in (
        ("kl_divergence", joined["lp"], joined["t"]),
        ("kl_divergence_with_log_targets", joined["lp_log"], joined["lt"]),
    ):
        if costs is None or cost in costs:
            start, parts = 0, []
            for (labels, count), setting in zip(blocks, KL_SETTINGS, strict=True):
                parts.append(Part(labels, setting, start, start + count))
                start += count
            yield Draw(cost, "soft", x, y, (), "", tuple(parts))


def _new_draws(
    dtype: np.dtype,
    points: int,
    z: np.ndarray,
    rows: list[np.ndarray],
    seed: int,
    costs: Collection[str] | None,
    extended: bool,
) -> Iterator[Draw]:
    """The focal, poly-1 and KL sweeps, from a generator of their own (the earlier sweeps keep
    their rows): the logit sweep ``z`` with hard and soft labels at every :data:`FOCAL_SETTINGS`
    (:data:`FOCAL_SETTINGS_FULL` if ``extended``), the softmax rows of :data:`POLY_QUICK_WIDTHS`
    classes (every width if ``extended``) at every :data:`POLY_SETTINGS`, and :func:`_kl_draws`."""
    rng = np.random.default_rng([seed, 16])
    hard = np.tile([0.0, 1.0], len(z) // 2).astype(dtype)
    soft = rng.uniform(0.0, 1.0, z.shape).astype(dtype)  # in [0, 1]: q = 1 - p_t stays positive
    both = (("hard", len(z)), ("soft", len(z)))
    for options in FOCAL_SETTINGS_FULL if extended else FOCAL_SETTINGS:
        zz, yy = np.concatenate([z, z]), np.concatenate([hard, soft])
        yield from _selected(costs, "sigmoid_focal_loss", "soft", zz, yy, options, parts=both)
    # One sweep a width, hard and soft labels together (rows are not padded to a common width:
    # -inf padding is the same cost, but it changes how the library's sums round). Without
    # extended, the rows of 4 and 128 classes only: those of 2 and 10 (5 random rows each) would
    # double the compile time.
    widths = sorted({len(r) for r in rows})
    for width in widths if extended else [w for w in widths if w in POLY_QUICK_WIDTHS]:
        onehot_rows, onehots, soft_rows, soft_labels = [], [], [], []
        for r in (r for r in rows if len(r) == width):
            for choice in np.flatnonzero(r != -np.inf)[: 4 if width <= 10 else 1]:  # 128 classes: 1
                onehot_rows.append(r)
                onehots.append(np.eye(width, dtype=dtype)[choice])
            t = _labels(rng, "soft", (width,), dtype)
            t[r == -np.inf] = 0
            soft_rows.append(r)
            soft_labels.append(t)
        x, y = np.stack(onehot_rows + soft_rows), np.stack(onehots + soft_labels)
        blocks = (("hard", len(onehot_rows)), ("soft", len(soft_rows)))
        for options in POLY_SETTINGS:
            yield from _selected(costs, "poly_loss_cross_entropy", "soft", x, y, options, parts=blocks)
    yield from _kl_draws(points, dtype, rng, costs)


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


def error(computed: float, exact: Any, scale: Any, dtype: Any, allowance: Any = 0) -> float:
    """:func:`scaled_error` where ``scale`` is given and the exact value finite, else :func:`ulp_error`.

    A result below the smallest normal number may flush to zero, as in :func:`ulp_error`.
    """
    if scale is None or not mp.isfinite(exact):
        return ulp_error(computed, exact, dtype, allowance)
    if computed == 0 and abs(exact) < mp.ldexp(1, _format(dtype)[1]):
        return 0.0
    return scaled_error(computed, exact, scale, dtype, allowance)


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
        scale_loss, scale_grad, scale_label = (
            sweep.scales[i] if sweep.scales is not None else (None, [None] * width, [None] * width)
        )
        errs = [error(float(loss[i]), e_loss, scale_loss, loss_dtype, allow_loss)]
        grad_errs = []
        for j, (c, e) in enumerate(zip(row_grad, e_grad, strict=True)):
            if scale_grad[j] is not None:
                grad_errs.append(error(float(c), e, scale_grad[j], grad_dtype, allow_grad[j]))
            elif sweep.labels == "soft" and sweep.probs is not None:
                target = sweep.targets[i] if elementwise else sweep.targets[i][j]
                scale = max(abs(sweep.probs[i][j]), abs(_exact._m(target)))
                grad_errs.append(scaled_error(float(c), e, scale, grad_dtype, allow_grad[j]))
            else:
                grad_errs.append(ulp_error(float(c), e, grad_dtype, allow_grad[j]))
        label_errs = []
        if label_grad is not None and e_label is not None:
            row_label = [label_grad[i]] if elementwise else label_grad[i]
            label_errs = [
                error(float(c), e, sc, grad_dtype, a)
                for c, e, sc, a in zip(row_label, e_label, scale_label, allow_label, strict=True)
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


# --- jaxloss.grad_norms: the norm of each row's gradient ---------------------------------------

NORM_COSTS = (
    "softmax_cross_entropy_with_integer_labels",
    "softmax_cross_entropy",
    "poly_loss_cross_entropy",
    "sigmoid_multilabel_cross_entropy",
    "kl_divergence",
    "kl_divergence_with_log_targets",
)
# A norm's error: the seeds' elements each within their bound, then the squares, their sum and
# the square root, about 1.5 ulp of the norm more; 4 bounds it as for each element.
NORM_TARGET_ULPS = 4.0


def evaluate_norms(jobs: Sequence[tuple[Callable[..., jax.Array], Sweep | Draw]], dtype: Any) -> list[np.ndarray]:
    """Each job's ``fn(inputs, targets)`` (a ``jaxloss.grad_norms`` function), as one compiled program."""

    def arrays(sweep: Sweep | Draw) -> tuple[jax.Array, jax.Array]:
        integer = sweep.labels == "integer"
        return jnp.asarray(sweep.inputs, dtype), jnp.asarray(sweep.targets, jnp.int32 if integer else dtype)

    def norms(inputs: list[tuple[jax.Array, jax.Array]]) -> list[jax.Array]:
        return [fn(a, b) for (fn, _), (a, b) in zip(jobs, inputs, strict=True)]

    computed = jax.jit(norms)([arrays(sweep) for _, sweep in jobs])
    return [np.asarray(n.astype(jnp.float32 if n.dtype != jnp.float64 else n.dtype), np.float64) for n in computed]


def score_norm(norms: np.ndarray, sweep: Sweep, dtype: Any) -> dict[str, Any]:
    """The worst error of each row's gradient norm against the norm of ``sweep``'s exact gradient.

    In ulps of the exact norm where the sweep scores its gradient elements in ulps; where it
    scores them against scales (soft labels, whose elements cancel; the poly-1 and KL scales),
    in units of eps times the norm of those scales, the bound the elements' own errors give.
    The allowance for rounding :math:`z - \\max z` is the norm of the elements' allowances
    (:math:`|\\lVert a \\rVert - \\lVert b \\rVert| \\le \\lVert a - b \\rVert`).

    Returns:
      ``{"error": worst, "nonfinite": count}`` in the compute dtype of ``dtype``.
    """
    compute = compute_dtype(dtype)
    worst, nonfinite = 0.0, 0
    for i, (_, e_grad, _) in enumerate(sweep.exact):
        width = len(e_grad)
        exact = mp.sqrt(mp.fsum(_exact._m(e) ** 2 for e in e_grad))
        allowance = 0
        if sweep.allowance is not None:
            allowance = mp.sqrt(mp.fsum(_exact._m(a) ** 2 for a in sweep.allowance[i][1]))
        scales = sweep.scales[i][1] if sweep.scales is not None else [None] * width
        scaled = sweep.labels == "soft" and sweep.probs is not None
        if scaled or any(s is not None for s in scales):
            units = []
            for j, e in enumerate(e_grad):
                if scales[j] is not None:
                    units.append(_exact._m(scales[j]))
                elif scaled:
                    assert sweep.probs is not None
                    units.append(max(abs(sweep.probs[i][j]), abs(_exact._m(sweep.targets[i][j]))))
                else:
                    units.append(abs(_exact._m(e)))
            err = error(float(norms[i]), exact, mp.sqrt(mp.fsum(u**2 for u in units)), compute, allowance)
        else:
            err = ulp_error(float(norms[i]), exact, compute, allowance)
        if err == np.inf:
            nonfinite += 1
        else:
            worst = max(worst, err)
    return {"error": worst, "nonfinite": nonfinite}
