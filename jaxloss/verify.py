"""``jaxloss verify``: the closed-form rules against ``jax.grad`` of the article's formulas.

For every cost, on whatever backend JAX sees, two sweeps run:

* **agreement**: random inputs where the literal formulas are accurate (|sigmoid logit| <= 4,
  |softmax logit| <= 8, probabilities in [0.02, 0.98]). The loss and the gradients of
  :mod:`jaxloss` and :mod:`jaxloss.forward`, with respect to the inputs and to floating labels,
  must equal those of :mod:`jaxloss.reference`, to a row-wise relative difference of
  ``1e-5`` in float32 and ``1e-12`` in float64;
* **stability**: rows scaled from 1e-5 up to 3e38, ``-inf`` masks and probabilities of exactly
  0 and 1. Every loss and gradient of the closed-form rules must be finite; the reference's
  non-finite results are counted, not failed.

It prints a table, writes ``--json``, and exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
from jaxloss import forward, reference

NUM_CLASSES = 5
ROWS = 64
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}
SCALES = np.concatenate([np.geomspace(1e-5, 1e4, 19), [1e20, 3e38]])


@dataclass(frozen=True)
class Case:
    """One cost, how to draw its inputs, and which of its arguments are differentiable."""

    name: str
    space: str  # "sigmoid", "softmax" or "probs": how inputs are drawn
    labels: str  # "binary", "soft", "onehot" or "integer"
    kwargs: tuple[tuple[str, Any], ...] = ()

    @property
    def argnums(self) -> tuple[int, ...]:
        return (0,) if self.labels == "integer" else (0, 1)


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


def _labels(rng: np.random.Generator, kind: str, shape: tuple[int, int]) -> np.ndarray:
    if kind == "binary":
        return rng.integers(0, 2, shape).astype(np.float64)
    if kind == "soft":
        raw = rng.random(shape)
        return raw / raw.sum(-1, keepdims=True)
    classes = rng.integers(0, shape[-1], shape[:-1])
    if kind == "integer":
        return classes
    return np.eye(shape[-1])[classes]


def _inputs(case: Case, rng: np.random.Generator, regime: str) -> tuple[np.ndarray, np.ndarray]:
    shape = (ROWS, NUM_CLASSES)
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
    y = _labels(rng, case.labels, shape)
    if regime == "stability" and case.space == "softmax":
        # Labels may not sit on a masked class: that loss is exactly +inf.
        masked = np.isneginf(x)
        if case.labels == "integer":
            y = np.where(masked[np.arange(ROWS), y], np.argmax(np.where(masked, -1, x), -1), y)
        else:
            y = np.where(masked, 0.0, y)
            y[y.sum(-1) == 0, 1] = 1.0
    return x, y


def _evaluate(fn: Callable[..., jax.Array], case: Case, x: jax.Array, y: jax.Array) -> tuple[np.ndarray, ...]:
    kwargs = dict(case.kwargs)

    def total(*args: jax.Array) -> jax.Array:
        return jnp.sum(fn(*args, **kwargs))

    loss = jax.jit(lambda a, b: fn(a, b, **kwargs))(x, y)
    grads = jax.jit(jax.grad(total, argnums=case.argnums))(x, y)
    return (np.asarray(loss, np.float64), *(np.asarray(g, np.float64) for g in grads))


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


def run(dtypes: Sequence[str] = ("float32", "float64"), seed: int = 0) -> list[Row]:
    """Runs both sweeps for every case, implementation and dtype."""
    rows = []
    for dtype_name in dtypes:
        with jax.enable_x64(dtype_name == "float64"):
            dtype = jnp.dtype(dtype_name)
            for case in CASES:
                rng = np.random.default_rng(seed)
                data = {regime: _inputs(case, rng, regime) for regime in ("agreement", "stability")}
                arrays = {
                    regime: (jnp.asarray(x, dtype), jnp.asarray(y, jnp.int32 if case.labels == "integer" else dtype))
                    for regime, (x, y) in data.items()
                }
                with jax.enable_x64(True):
                    x_wide, y_wide = arrays["stability"]
                    y_wide = y_wide if case.labels == "integer" else jnp.asarray(y_wide, jnp.float64)
                    wide = _evaluate(getattr(jaxloss, case.name), case, jnp.asarray(x_wide, jnp.float64), y_wide)
                ref_fn = getattr(reference, case.name)
                ref_agree = _evaluate(ref_fn, case, *arrays["agreement"])
                ref_stable = _evaluate(ref_fn, case, *arrays["stability"])
                for impl_name, namespace in IMPLEMENTATIONS.items():
                    fn = getattr(namespace, case.name)
                    agree = _evaluate(fn, case, *arrays["agreement"])
                    stable = _evaluate(fn, case, *arrays["stability"])
                    loss_diff = _rowwise_difference(agree[0], ref_agree[0])
                    grad_diff = max(_rowwise_difference(g, r) for g, r in zip(agree[1:], ref_agree[1:], strict=True))
                    bad_rule = _unexpected_nonfinite(stable, wide, dtype)
                    tol = TOLERANCE[dtype_name]
                    ok = loss_diff <= tol and grad_diff <= tol and bad_rule == 0 and _nonfinite(agree) == 0
                    rows.append(
                        Row(
                            case.name,
                            case.labels,
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


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a fixed-width text table."""
    header = ("cost", "labels", "rules", "dtype", "loss diff", "grad diff", "ref non-finite", "rule non-finite", "")
    lines = [header] + [
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
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``jaxloss verify``."""
    parser = argparse.ArgumentParser(prog="jaxloss verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="PATH", help="also write the rows to this JSON file")
    parser.add_argument("--dtype", choices=("float32", "float64", "both"), default="both")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    dtypes = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
    print(f"jaxloss {jaxloss.__version__} on {jax.default_backend()} ({jax.devices()[0].device_kind})")
    print(
        f"agreement: {ROWS}x{NUM_CLASSES} random inputs, tolerance {TOLERANCE}; "
        f"stability: scales {SCALES[0]:g}..{SCALES[-1]:g}, -inf masks, probabilities 0 and 1"
    )
    rows = run(dtypes, args.seed)
    print(format_table(rows))
    failed = [r for r in rows if not r.ok]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": jax.default_backend(), "rows": [asdict(r) for r in rows]}, f, indent=1)
    print(f"{len(rows) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
