"""``jaxloss verify``: the closed-form rules against autodiff of the article and against mpmath.

Two parts, on whatever backend JAX sees:

1. **agreement** (the design card's comparison): for every cost, the loss and gradients of
   :mod:`jaxloss` and :mod:`jaxloss.forward` equal those of ``jax.grad`` of
   :mod:`jaxloss.reference` on random inputs where the article's formulas are accurate, to a
   row-wise relative difference of ``1e-5`` in float32 and ``1e-12`` in float64; and on rows
   scaled up to 3e38, ``-inf`` masks and probabilities of exactly 0 and 1, the rules return
   nothing non-finite where the exact result is finite.
2. **precision** (see ``jaxloss.tools.precision``): every loss, gradient and label gradient of
   :mod:`jaxloss`, :mod:`jaxloss.forward`, :mod:`jaxloss.reference` and optax, in ulps of the
   exact value computed by mpmath, side by side. The rules must keep losses within 2 ulp (4
   for soft-label sums over classes) and gradient elements within 4 ulp (a probability e/S is
   rounded three times; soft-label logit gradients in units of eps·max(|a|, |y|), and other
   sums of terms of opposite signs in units of eps times the sum of their magnitudes), beyond
   what rounding z − max z costs, with zero non-finite results where the exact one is finite.
   The focal, poly-1 and KL costs are scored at several hyperparameters, one line each.
   bfloat16 and float16 (``--full``): the float32 loss within 2 float32 ulp and the gradient
   within 1 ulp of the input dtype.

It prints both tables, writes ``--json`` and ``--plot``, and exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
from jaxloss import forward, grad_norms, reference
from jaxloss.tools import precision as _precision
from jaxloss.tools import run_info

NUM_CLASSES = 5
ROWS = 64
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}
POINTS_QUICK = 25
POINTS_FULL = 200
FUZZ_QUICK = 112
FUZZ_FULL = 5600
FUZZ_WIDTHS_QUICK = (3, 16)  # classes of the random rows; --full uses precision.FUZZ_WIDTHS
SCALES = np.concatenate([np.geomspace(1e-5, 1e4, 19), [1e20, 3e38]])


@dataclass(frozen=True)
class Case:
    """One cost, how to draw its inputs, and which of its arguments are differentiable."""

    name: str
    space: str  # "sigmoid", "softmax", "probs" or "logprobs": how inputs are drawn
    labels: str  # "binary", "soft", "onehot", "integer", "mixed" or "log" (log-targets)
    kwargs: tuple[tuple[str, Any], ...] = ()

    @property
    def argnums(self) -> tuple[int, ...]:
        return (0,) if self.labels == "integer" else (0, 1)

    @property
    def tag(self) -> str:
        """The labels and the keyword arguments: ``"binary, gamma 0.5"``."""
        return ", ".join([self.labels, *(f"{k} {v:g}" for k, v in self.kwargs)])


CASES: tuple[Case, ...] = (
    Case("sigmoid_binary_cross_entropy", "sigmoid", "binary"),
    Case("sigmoid_binary_cross_entropy", "sigmoid", "soft"),
    Case("softmax_cross_entropy", "softmax", "onehot"),
    Case("softmax_cross_entropy", "softmax", "soft"),
    Case("softmax_cross_entropy_with_integer_labels", "softmax", "integer"),
    Case("safe_softmax_cross_entropy", "softmax", "soft"),
    Case("sigmoid_multilabel_cross_entropy", "sigmoid", "binary"),
    Case("sigmoid_multilabel_cross_entropy", "sigmoid", "soft"),
    Case("binary_cross_entropy", "probs", "binary"),
    Case("binary_cross_entropy", "probs", "soft"),
    Case("categorical_cross_entropy", "probs", "onehot"),
    Case("categorical_cross_entropy", "probs", "soft"),
    Case("multilabel_cross_entropy", "probs", "binary"),
    Case("multilabel_cross_entropy", "probs", "soft"),
    Case("sigmoid_focal_loss", "sigmoid", "mixed", (("gamma", 0.5), ("alpha", 0.25))),
    Case("poly_loss_cross_entropy", "softmax", "mixed", (("epsilon", -1.0),)),
    Case("kl_divergence", "logprobs", "soft"),
    Case("kl_divergence_with_log_targets", "logprobs", "log"),
)

IMPLEMENTATIONS: dict[str, Any] = {"jaxloss": jaxloss, "jaxloss.forward": forward}


@dataclass
class Row:
    """One line of the table."""

    cost: str
    labels: str
    implementation: str
    dtype: str
    loss_diff: float
    grad_diff: float
    nonfinite_reference: int
    nonfinite_rule: int
    ok: bool


def _labels(rng: np.random.Generator, kind: str, shape: tuple[int, int], onehot: bool = False) -> np.ndarray:
    """Labels of ``kind``; ``mixed``: hard (0/1, or one-hot with ``onehot``) in the first half of
    the rows and soft in the second, so that one compiled case has both."""
    if kind == "mixed":
        half = (shape[0] // 2, shape[1])
        hard = _labels(rng, "onehot" if onehot else "binary", half)
        return np.concatenate([hard, _labels(rng, "soft", (shape[0] - half[0], shape[1]))])
    if kind == "binary":
        return rng.integers(0, 2, shape).astype(np.float64)
    if kind == "soft":
        raw = rng.random(shape)
        return raw / raw.sum(-1, keepdims=True)
    classes = rng.integers(0, shape[-1], shape[:-1])
    if kind == "integer":
        return classes
    return np.eye(shape[-1])[classes]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    top = np.max(x, axis=-1, keepdims=True)
    return x - top - np.log(np.sum(np.exp(x - top), axis=-1, keepdims=True))


def _divergence_inputs(case: Case, rng: np.random.Generator, regime: str) -> tuple[np.ndarray, np.ndarray]:
    """Log-predictions and targets (log-targets for ``labels == "log"``).

    Agreement: the log-softmax of logits in [-4, 4] against random normalised targets.
    Stability: permutations of log-predictions ``0, -inf, -1e-7, -1e4, -3e38`` against targets
    ``0, 1, 1e-30, 1 - 1e-7, 0.5`` (log-targets ``-inf, 0, -1e-7, -1e4, -3e38``).
    """
    shape = (ROWS, NUM_CLASSES)
    if regime == "agreement":
        x = _log_softmax(rng.uniform(-4.0, 4.0, shape))
        t = _labels(rng, "soft", shape)
        return x, np.log(t) if case.labels == "log" else t
    predictions = np.array([0.0, -np.inf, -1e-7, -1e4, -3e38])
    targets = (
        np.array([-np.inf, 0.0, -1e-7, -1e4, -3e38])
        if case.labels == "log"
        else np.array([0.0, 1.0, 1e-30, 1.0 - 1e-7, 0.5])
    )
    x = np.stack([rng.permutation(predictions) for _ in range(ROWS)])
    y = np.stack([rng.permutation(targets) for _ in range(ROWS)])
    return x, y


def _inputs(case: Case, rng: np.random.Generator, regime: str) -> tuple[np.ndarray, np.ndarray]:
    shape = (ROWS, NUM_CLASSES)
    if case.space == "logprobs":
        return _divergence_inputs(case, rng, regime)
    if regime == "agreement":
        if case.space == "probs":
            x = rng.uniform(0.02, 0.98, shape)
            if case.name == "categorical_cross_entropy":
                x = x / x.sum(-1, keepdims=True)
        else:
            bound = 4.0 if case.space == "sigmoid" else 8.0
            x = rng.uniform(-bound, bound, shape)
    elif case.space == "probs":
        edges = np.array([0.0, 1.0, 1e-30, 1.0 - 1e-7, 0.5])
        x = np.stack([rng.permutation(edges) for _ in range(ROWS)])
    else:
        pattern = np.array([1.0, 0.0, -1.0, 0.5, -0.5])
        x = np.concatenate([np.outer(SCALES, pattern), np.outer(SCALES, -pattern)])
        if case.space == "softmax":
            x = np.concatenate([x, np.full((1, NUM_CLASSES), -np.inf), [[-np.inf, 2.0, -np.inf, 0.0, 1.0]]])
        x = x[np.arange(ROWS) % len(x)]
    y = _labels(rng, case.labels, shape, onehot=case.space == "softmax")
    if regime == "stability" and case.space == "softmax":
        # Labels may not sit on a masked class: that loss is exactly +inf.
        masked = np.isneginf(x)
        if case.labels == "integer":
            y = np.where(masked[np.arange(ROWS), y], np.argmax(np.where(masked, -1, x), -1), y)
        else:
            y = np.where(masked, 0.0, y)
            y[y.sum(-1) == 0, 1] = 1.0
    return x, y


def _functions(case: Case) -> dict[str, Callable[..., jax.Array]]:
    """The two rules and the reference, for ``case``."""
    namespaces = {**IMPLEMENTATIONS, "reference": reference}
    return {name: functools.partial(getattr(ns, case.name), **dict(case.kwargs)) for name, ns in namespaces.items()}


def _rowwise_difference(value: np.ndarray, ref: np.ndarray) -> float:
    """max over rows of max|value - ref| / max(max|ref|, 1), over the rows where ``ref`` is finite.

    The scale floor of 1 keeps the reference's own rounding (its softmax gradient at a confident
    true class cancels) from counting against the rules; ulp-level scoring is mpmath's job.
    """
    ref = ref.reshape(ref.shape[0], -1)
    value = value.reshape(ref.shape)
    finite_rows = np.all(np.isfinite(ref), axis=-1)
    if not finite_rows.any():
        return 0.0
    ref, value = ref[finite_rows], value[finite_rows]
    scale = np.maximum(np.max(np.abs(ref), axis=-1), 1.0)
    diff = np.max(np.abs(value - ref), axis=-1)
    return float(np.max(np.where(np.isnan(diff), np.inf, diff / scale)))


def _nonfinite(arrays: Sequence[np.ndarray]) -> int:
    return int(sum(np.sum(~np.isfinite(a)) for a in arrays))


def _unexpected_nonfinite(results: Sequence[np.ndarray], wide: Sequence[np.ndarray], dtype: jnp.dtype) -> int:
    """Non-finite results where the exact result is finite in ``dtype``.

    A result whose exact value exceeds the dtype's largest number rounds to ``inf`` correctly:
    ``[3e38, -3e38]`` with the label on the second class costs 6e38, and so does the label
    gradient there. ``wide`` holds the same results recomputed by the rules in float64.
    """
    largest = float(jnp.finfo(dtype).max)
    return int(sum(np.sum(~np.isfinite(r) & (np.abs(w) <= largest)) for r, w in zip(results, wide, strict=True)))


def run(
    dtypes: Sequence[str] = ("float32", "float64"), seed: int = 0, costs: Collection[str] | None = None
) -> list[Row]:
    """Runs both sweeps for every case (of ``costs`` if given), implementation and dtype.

    Each dtype is one compiled program: every case, the rules and the reference, on the
    agreement rows and the stability rows stacked (rows are independent).
    """
    rows = []
    cases = [c for c in CASES if costs is None or c.name in costs]
    for dtype_name in dtypes:
        print(f"  agreement {dtype_name}: {len(cases)} cases ...", file=sys.stderr, flush=True)
        dtype = jnp.dtype(dtype_name)
        data = []
        for case in cases:
            rng = np.random.default_rng(seed)
            data.append({regime: _inputs(case, rng, regime) for regime in ("agreement", "stability")})
        stacked = [
            _precision.Draw(
                case.name,
                case.labels,
                np.concatenate([d["agreement"][0], d["stability"][0]]),
                np.concatenate([d["agreement"][1], d["stability"][1]]),
            )
            for case, d in zip(cases, data, strict=True)
        ]
        with jax.enable_x64(dtype_name == "float64"):
            results = _precision.evaluate_many(
                [(_functions(c), draw) for c, draw in zip(cases, stacked, strict=True)], dtype
            )
        if dtype_name == "float64":
            wides = [tuple(r[ROWS:] for r in result["jaxloss"]) for result in results]
        else:
            # The stability rows as the dtype rounds them, recomputed by the rules in float64.
            rounded = [
                _precision.Draw(
                    case.name,
                    case.labels,
                    d["stability"][0].astype(dtype).astype(np.float64),
                    d["stability"][1].astype(np.int32 if case.labels == "integer" else dtype),
                )
                for case, d in zip(cases, data, strict=True)
            ]
            with jax.enable_x64(True):
                wide_jobs = [
                    ({"jaxloss": _functions(c)["jaxloss"]}, draw) for c, draw in zip(cases, rounded, strict=True)
                ]
                wides = [result["jaxloss"] for result in _precision.evaluate_many(wide_jobs, jnp.float64)]
        for case, result, wide in zip(cases, results, wides, strict=True):
            ref_agree = tuple(r[:ROWS] for r in result["reference"])
            ref_stable = tuple(r[ROWS:] for r in result["reference"])
            for impl_name in IMPLEMENTATIONS:
                agree = tuple(r[:ROWS] for r in result[impl_name])
                stable = tuple(r[ROWS:] for r in result[impl_name])
                loss_diff = _rowwise_difference(agree[0], ref_agree[0])
                grad_diff = max(_rowwise_difference(g, r) for g, r in zip(agree[1:], ref_agree[1:], strict=True))
                bad_rule = _unexpected_nonfinite(stable, wide, dtype)
                tol = TOLERANCE[dtype_name]
                ok = loss_diff <= tol and grad_diff <= tol and bad_rule == 0 and _nonfinite(agree) == 0
                rows.append(
                    Row(
                        case.name,
                        case.tag,
                        impl_name,
                        dtype_name,
                        loss_diff,
                        grad_diff,
                        _nonfinite(ref_stable),
                        bad_rule,
                        ok,
                    )
                )
    return rows


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    cells = [list(header), *map(list, lines)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells)


def format_table(rows: Sequence[Row]) -> str:
    """The agreement rows as a fixed-width text table."""
    header = ("cost", "labels", "rules", "dtype", "loss diff", "grad diff", "ref non-finite", "rule non-finite", "")
    return _table(
        header,
        [
            (
                r.cost,
                r.labels,
                r.implementation,
                r.dtype,
                f"{r.loss_diff:.1e}",
                f"{r.grad_diff:.1e}",
                str(r.nonfinite_reference),
                str(r.nonfinite_rule),
                "ok" if r.ok else "FAIL",
            )
            for r in rows
        ],
    )


# --- precision ---------------------------------------------------------------------------

OPTAX_EQUIVALENTS = {
    "sigmoid_binary_cross_entropy": lambda optax: optax.losses.sigmoid_binary_cross_entropy,
    "softmax_cross_entropy": lambda optax: optax.losses.softmax_cross_entropy,
    "softmax_cross_entropy_with_integer_labels": lambda optax: optax.losses.softmax_cross_entropy_with_integer_labels,
    "safe_softmax_cross_entropy": lambda optax: optax.losses.safe_softmax_cross_entropy,
    "sigmoid_multilabel_cross_entropy": lambda optax: (
        lambda z, y: jnp.sum(optax.losses.sigmoid_binary_cross_entropy(z, y), axis=-1)
    ),
    "sigmoid_focal_loss": lambda optax: optax.losses.sigmoid_focal_loss,
    "poly_loss_cross_entropy": lambda optax: optax.losses.poly_loss_cross_entropy,
    "kl_divergence": lambda optax: optax.losses.kl_divergence,
    "kl_divergence_with_log_targets": lambda optax: optax.losses.kl_divergence_with_log_targets,
}


def _precision_implementations(
    cost: str, options: Sequence[tuple[str, Any]] = ()
) -> dict[str, Callable[..., jax.Array] | None]:
    """The implementations of ``cost`` side by side, each with the keyword arguments ``options``."""
    kwargs = dict(options)
    impls: dict[str, Callable[..., jax.Array] | None] = {
        "jaxloss": functools.partial(getattr(jaxloss, cost), **kwargs),
        "forward": functools.partial(getattr(forward, cost), **kwargs),
        "reference": functools.partial(getattr(reference, cost), **kwargs),
    }
    try:
        import optax

        equivalent = OPTAX_EQUIVALENTS[cost](optax) if cost in OPTAX_EQUIVALENTS else None
        impls["optax"] = None if equivalent is None else functools.partial(equivalent, **kwargs)
    except ImportError:
        impls["optax"] = None
    return impls


@dataclass
class PrecisionRow:
    """One (cost, labels, dtype) line of the precision table: worst errors per implementation."""

    cost: str
    labels: str
    dtype: str
    count: int
    loss_target: float
    grad_target: float
    scores: dict[str, dict[str, Any] | None]
    ok: bool
    norm: dict[str, Any] | None = None  # jaxloss.grad_norms: worst error and non-finite count


def run_precision(
    dtypes: Sequence[str],
    points: int,
    fuzz: int = 0,
    seed: int = 0,
    costs: Collection[str] | None = None,
    fuzz_widths: Sequence[int] = _precision.FUZZ_WIDTHS,
    extended: bool = False,
) -> tuple[list[PrecisionRow], dict]:
    """Scores every implementation against mpmath on the sweeps and on ``fuzz`` random rows per
    dtype (of ``costs`` if given); returns the rows and per-row errors for plots.

    Each dtype's sweeps are one compiled program, traced and compiled on a second thread while
    this one computes the exact values in mpmath (XLA's compiler releases the GIL).
    """
    rows: list[PrecisionRow] = []
    curves: dict[str, dict[str, Any]] = {}
    plans = []
    with ThreadPoolExecutor(max_workers=2) as compiler:
        for dtype_name in dtypes:
            dtype = jnp.dtype(dtype_name)
            # Each draw with the suffix of its rows' labels in the table.
            tagged = [(d, "") for d in _precision.draws(dtype, points, seed, costs, extended)]
            tagged += [(d, ", random") for d in _precision.fuzz_draws(fuzz, dtype, seed, costs, fuzz_widths)]
            implementations = [_precision_implementations(d.cost, d.options) for d, _ in tagged]
            jobs = [
                ({name: fn for name, fn in impls.items() if fn is not None}, d)
                for impls, (d, _) in zip(implementations, tagged, strict=True)
            ]
            pending = compiler.submit(_with_x64(dtype_name == "float64", _precision.evaluate_many), jobs, dtype)
            plans.append((dtype_name, tagged, implementations, pending))
        # Every dtype's exact values first, while the programs compile; then the scores.
        exact = []
        for dtype_name, tagged, _, _ in plans:
            sweeps = []
            for draw, suffix in tagged:
                kinds = "/".join(dict.fromkeys(part.labels for part in _precision.parts_of(draw)))
                name = ", ".join(text for text in (kinds, draw.setting) if text) + suffix
                print(f"  precision {draw.cost} {name} {dtype_name} ...", file=sys.stderr, flush=True)
                sweeps.append(
                    _precision.make_sweep(
                        draw.cost, draw.labels, draw.inputs, draw.targets, jnp.dtype(dtype_name), draw.options
                    )
                )
            exact.append(sweeps)
        for (dtype_name, tagged, implementations, pending), sweeps in zip(plans, exact, strict=True):
            dtype = jnp.dtype(dtype_name)
            low = jnp.finfo(dtype).bits < 32
            loss_dtype = jnp.float32 if low else dtype
            grad_target = 1.0 if low else _precision.GRAD_TARGET_ULPS
            print(f"  precision {dtype_name}: the compiled program ...", file=sys.stderr, flush=True)
            evaluated = pending.result()
            # jaxloss.grad_norms beside the costs: the norm of each row's gradient, one more program.
            normed = [
                i
                for i, (draw, _) in enumerate(tagged)
                if draw.cost in _precision.NORM_COSTS and np.ndim(draw.inputs) == 2
            ]
            norm_jobs = [
                (functools.partial(getattr(grad_norms, tagged[i][0].cost), **dict(tagged[i][0].options)), sweeps[i])
                for i in normed
            ]
            norms: dict[int, np.ndarray] = {}
            if norm_jobs:
                computed_norms = _with_x64(dtype_name == "float64", _precision.evaluate_norms)(norm_jobs, dtype)
                norms = dict(zip(normed, computed_norms, strict=True))
            scored = [
                (_precision.subset(whole, part), part, suffix, impls, outputs, norms.get(k))
                for k, (whole, (draw, suffix), impls, outputs) in enumerate(
                    zip(sweeps, tagged, implementations, evaluated, strict=True)
                )
                for part in _precision.parts_of(draw)
            ]
            for sweep, part, suffix, impls, outputs, row_norms in scored:
                label_name = part.tag + suffix
                scores: dict[str, dict[str, Any] | None] = {}
                for name in impls:
                    if name not in outputs:
                        scores[name] = None
                        continue
                    results = tuple(r[part.start : part.stop] for r in outputs[name])
                    result = _precision.score(results, sweep, loss_dtype, dtype)
                    scores[name] = asdict(result)
                    if dtype_name == "float32" and label_name == "hard" and sweep.inputs.ndim == 1:
                        curves.setdefault(sweep.cost, {})[name] = (sweep.inputs.tolist(), result.row_errors)
                    if dtype_name == "float32" and label_name == "integer" and sweep.inputs.shape[-1] == 4:
                        first = np.asarray(sweep.targets) == 0  # the rows [z, 0, -z, z/2] with label 0
                        errors = np.asarray(result.row_errors)[first]
                        curves.setdefault(sweep.cost, {})[name] = (sweep.inputs[first, 0].tolist(), errors.tolist())
                ok = all(
                    s is not None
                    and s["nonfinite"] == 0
                    and s["loss"] <= sweep.loss_target
                    and s["grad"] <= grad_target
                    and s["label_grad"] <= grad_target
                    for s in (scores["jaxloss"], scores["forward"])
                )
                norm = None
                if row_norms is not None:
                    norm = _precision.score_norm(row_norms[part.start : part.stop], sweep, dtype)
                    ok = ok and norm["nonfinite"] == 0 and norm["error"] <= _precision.NORM_TARGET_ULPS
                rows.append(
                    PrecisionRow(
                        sweep.cost,
                        label_name,
                        dtype_name,
                        len(sweep.exact),
                        sweep.loss_target,
                        grad_target,
                        scores,
                        ok,
                        norm,
                    )
                )
    return rows, curves


def _with_x64(enabled: bool, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` run with float64 enabled or not: the setting is per thread."""

    def run_in_mode(*args: Any) -> Any:
        with jax.enable_x64(enabled):
            return fn(*args)

    return run_in_mode


def _merge(rows: list[PrecisionRow]) -> list[PrecisionRow]:
    """Merges sweeps of the same (cost, labels, dtype): softmax rows come in blocks of widths."""
    merged: dict[tuple[str, str, str], PrecisionRow] = {}
    for r in rows:
        key = (r.cost, r.labels, r.dtype)
        if key not in merged:
            merged[key] = r
            continue
        m = merged[key]
        m.count += r.count
        m.ok = m.ok and r.ok
        for name, s in r.scores.items():
            t = m.scores.get(name)
            if s is None or t is None:
                continue
            for field in ("loss", "grad", "label_grad"):
                t[field] = max(t[field], s[field])
            t["nonfinite"] += s["nonfinite"]
        if r.norm is not None and m.norm is not None:
            m.norm = {
                "error": max(m.norm["error"], r.norm["error"]),
                "nonfinite": m.norm["nonfinite"] + r.norm["nonfinite"],
            }
    for m in merged.values():
        for s in m.scores.values():
            if s is not None:
                s.pop("row_errors", None)
    return list(merged.values())


def _short(x: float) -> str:
    if x == 0:
        return "0"
    if x < 10:
        return f"{x:.1f}"
    return f"{x:.0e}".replace("e+0", "e").replace("e+", "e")


def format_precision_table(rows: Sequence[PrecisionRow]) -> str:
    """The precision rows: worst loss / gradient / label-gradient error and non-finite count."""
    names = ("jaxloss", "forward", "reference", "optax")

    def cell(s: dict[str, Any] | None) -> str:
        if s is None:
            return "-"
        text = f"{_short(s['loss'])}/{_short(s['grad'])}/{_short(s['label_grad'])}"
        return text + (f" nf{s['nonfinite']}" if s["nonfinite"] else "")

    def norm_cell(n: dict[str, Any] | None) -> str:
        if n is None:
            return "-"
        return _short(n["error"]) + (f" nf{n['nonfinite']}" if n["nonfinite"] else "")

    header = ("cost", "labels", "dtype", "n", *names, "grad_norms", "")
    return _table(
        header,
        [
            (
                r.cost,
                r.labels,
                r.dtype,
                str(r.count),
                *(cell(r.scores.get(n)) for n in names),
                norm_cell(r.norm),
                "ok" if r.ok else "FAIL",
            )
            for r in rows
        ],
    )


PLOTTED = {
    "sigmoid_binary_cross_entropy": "logit z (labels 0 and 1)",
    "softmax_cross_entropy_with_integer_labels": "z in the row [z, 0, -z, z/2], label 0",
    "binary_cross_entropy": "probability a (labels 0 and 1)",
}
FLOOR = 1e-2  # where an error of exactly 0 ulp is drawn on the log axis
STYLES = {  # jaxloss on top, hollow, so that forward's identical points do not hide it
    "reference": dict(marker="x", ms=4, color="tab:red", zorder=1),
    "optax": dict(marker="+", ms=6, color="tab:orange", zorder=2),
    "forward": dict(marker=".", ms=3, color="tab:green", zorder=3),
    "jaxloss": dict(marker="o", ms=6, mfc="none", color="tab:blue", zorder=4),
}


def save_plot(curves: dict, path: str) -> None:
    """Saves the worst error of each element against its input (float32), one panel a cost."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    costs = [c for c in PLOTTED if c in curves]
    fig, axes = plt.subplots(1, len(costs), figsize=(6 * len(costs), 4.5), squeeze=False)
    for ax, cost in zip(axes[0], costs, strict=True):
        for name in [n for n in STYLES if n in curves[cost]]:
            xs, errs = curves[cost][name]
            x, e = np.asarray(xs, np.float64), np.asarray(errs, np.float64)
            keep = np.isfinite(x)
            ax.plot(x[keep], np.clip(e[keep], FLOOR, 1e9), ls="none", label=name, **STYLES[name])
        if cost == "binary_cross_entropy":
            ax.set_xscale("log")
        else:
            ax.set_xscale("symlog", linthresh=1e-5)
            ticks = [-1e4, -1e1, -1e-2, 0.0, 1e-2, 1e1, 1e4]
            ax.set_xticks(ticks, ["-1e4", "-10", "-0.01", "0", "0.01", "10", "1e4"])
        ax.set_yscale("log")
        ax.axhline(
            _precision.TARGET_ULPS, color="k", lw=0.8, ls="--", label=f"loss bound, {_precision.TARGET_ULPS:g} ulp"
        )
        ax.axhline(
            _precision.GRAD_TARGET_ULPS,
            color="k",
            lw=0.8,
            ls=":",
            label=f"gradient bound, {_precision.GRAD_TARGET_ULPS:g} ulp",
        )
        ax.axhline(FLOOR, color="0.6", lw=0.6, label=f"exact (0 ulp), drawn at {FLOOR:g}")
        ax.set_xlabel(PLOTTED[cost])
        ax.set_ylabel("worst error of loss and gradients (ulp)")
        ax.set_title(f"{cost}, float32", fontsize=10)
    # One legend for the figure, below the panels, where it hides no point.
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``jaxloss verify``."""
    parser = argparse.ArgumentParser(prog="jaxloss verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="PATH", help="also write every result to this JSON file")
    parser.add_argument("--plot", metavar="PATH", help="save a plot of error against logit (needs matplotlib)")
    parser.add_argument("--full", action="store_true", help="more points, and bfloat16 and float16 too")
    parser.add_argument(
        "--dtype",
        choices=("float32", "float64", "bfloat16", "float16", "all"),
        default="all",
        help="one dtype only (default: float32 and float64, and bfloat16 and float16 with --full)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random rows (default 0)")
    parser.add_argument(
        "--cost", action="append", choices=sorted({c.name for c in CASES}), help="only these costs (repeatable)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install 'jaxloss[plot]' (or matplotlib)")
    every = ("float32", "float64", "bfloat16", "float16") if args.full else ("float32", "float64")
    dtypes = every if args.dtype == "all" else (args.dtype,)
    points = POINTS_FULL if args.full else POINTS_QUICK
    fuzz = FUZZ_FULL if args.full else FUZZ_QUICK
    widths = _precision.FUZZ_WIDTHS if args.full else FUZZ_WIDTHS_QUICK
    print(f"jaxloss {jaxloss.__version__} on {jax.devices()[0].platform} ({jax.devices()[0].device_kind})")
    agreement_dtypes = [d for d in dtypes if d in TOLERANCE]
    # The agreement part is all compilation: it runs on its own thread beside the precision part.
    with ThreadPoolExecutor(max_workers=1) as beside:
        agreement = beside.submit(_with_x64(False, run), agreement_dtypes, args.seed, args.cost)
        precision_rows, curves = run_precision(dtypes, points, fuzz, args.seed, args.cost, widths, args.full)
        rows = agreement.result()
    precision_rows = _merge(precision_rows)
    print(
        f"\n1. agreement with jax.grad of jaxloss.reference: {ROWS}x{NUM_CLASSES} random inputs, "
        f"row-wise tolerance {TOLERANCE}; stability rows scaled {SCALES[0]:g}..{SCALES[-1]:g}"
    )
    print(format_table(rows))
    print(
        f"\n2. precision against mpmath, {points} points a sweep and {fuzz} random rows a dtype: worst error "
        "in ulps as loss/gradient/label gradient; nf = non-finite where the exact result is finite; "
        "grad_norms: the worst error of jaxloss.grad_norms, the norm of each row's gradient"
    )
    print(format_precision_table(precision_rows))
    failed = [r for r in rows if not r.ok] + [r for r in precision_rows if not r.ok]
    total = len(rows) + len(precision_rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    **run_info.header("jaxloss verify", argv, started),
                    "passed": total - len(failed),
                    "failed": len(failed),
                    "agreement": [asdict(r) for r in rows],
                    "precision": [asdict(r) for r in precision_rows],
                },
                f,
                indent=1,
                default=float,
            )
    if args.plot:
        save_plot(curves, args.plot)
        print(f"plot saved to {args.plot}")
    print(f"{total - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
