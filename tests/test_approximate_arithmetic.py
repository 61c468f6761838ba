"""Accuracy where ``exp`` and division are approximate, as on XLA-GPU, tested on the CPU.

In float32, XLA-GPU lowers every division to ``div.full.f32`` (a reciprocal times the numerator,
up to 2 ulp) and ``exp`` to libdevice's ``__nv_expf`` (up to 2 ulp): read from the deviceless
H200 PTX of the poly-1 loss (jax 0.10.2). On an H200, ``jaxloss verify`` scored poly-1 with
hard labels and epsilon = -1 at 3.3/4.1/3.3 ulp (loss / gradient / label gradient), where the
CPU gives 2.2/2.4/2.2: at epsilon = -1 a confident row's loss is about T^2/2 and its gradient
-(T/S)^2, which double every error of the exponentials and of the division.

Here the differentiated program is interpreted one equation at a time with ``exp`` moved by k
ulp and each division made ``a * (1/b moved by m ulp)``, with every per-platform primitive at
its portable form (the one an accelerator gets), and scored against mpmath by the verify
harness. Before ``_compensated.exp_rounded`` and ``divide`` the gradient reached 4.9 to 8.4 ulp.
"""

import jax
import jax.extend as jex
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss.tools import precision

CALLS = ("pjit", "jit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call", "remat", "checkpoint")


def _moved(x, ulps):
    toward = jnp.full_like(x, jnp.inf if ulps > 0 else -jnp.inf)
    for _ in range(abs(ulps)):
        x = jnp.nextafter(x, toward)
    return x


def _approximate(exp_ulps, reciprocal_ulps):
    """``exp`` and ``div`` as an accelerator might compute them, and the portable forms chosen."""

    def exp(x, **params):
        return _moved(jax.lax.exp_p.bind(x, **params), exp_ulps)

    def div(a, b, **params):
        if not jnp.issubdtype(jnp.result_type(a), jnp.floating):
            return jax.lax.div_p.bind(a, b, **params)
        a, b = jnp.broadcast_arrays(a, b)
        return a * _moved(1.0 / b, reciprocal_ulps)

    def platform_index(**params):
        return jnp.int32(len(params["platforms"]) - 1)  # platform_dependent's default branch, last

    return {"exp": exp, "div": div, "platform_index": platform_index}


def _interpret(jaxpr, consts, args, hooks):
    env = {}

    def read(v):
        return v.val if isinstance(v, jex.core.Literal) else env[v]

    env.update(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))
    for eqn in jaxpr.eqns:
        ins = [read(v) for v in eqn.invars]
        name, params = eqn.primitive.name, eqn.params
        inner = params.get("jaxpr") or params.get("call_jaxpr") or params.get("fun_jaxpr")
        if name in hooks:
            outs = hooks[name](*ins, **params)
        elif name == "cond":
            branch = params["branches"][int(ins[0])]
            outs = _interpret(branch.jaxpr, branch.consts, ins[1:], hooks)
        elif inner is not None and name in CALLS:
            closed = inner if hasattr(inner, "consts") else jex.core.ClosedJaxpr(inner, ())
            outs = _interpret(closed.jaxpr, closed.consts, ins, hooks)
        else:
            assert "branches" not in params and inner is None, f"no interpretation for {name}"
            outs = eqn.primitive.bind(*ins, **params)
        if not eqn.primitive.multiple_results:
            outs = [outs]
        env.update(zip(eqn.outvars, outs, strict=True))
    return [read(v) for v in jaxpr.outvars]


def _evaluate(cost, x, y, hooks):
    def total(a, b):
        loss = cost(a, b)
        return jnp.sum(loss), loss

    closed = jax.make_jaxpr(jax.grad(total, argnums=(0, 1), has_aux=True))(x, y)
    (grad, label_grad), loss = jax.tree.unflatten(
        jax.tree.structure(((x, y), x[:, 0])), _interpret(closed.jaxpr, closed.consts, [x, y], hooks)
    )
    return tuple(np.asarray(v, np.float64) for v in (loss, grad, label_grad))


@pytest.fixture(scope="module")
def poly_sweep():
    dtype = np.dtype(np.float32)
    (draw,) = [
        d for d in precision.draws(dtype, 25, 0, {"poly_loss_cross_entropy"}) if dict(d.options)["epsilon"] == -1.0
    ]
    return draw, precision.make_sweep(draw.cost, draw.labels, draw.inputs, draw.targets, dtype, draw.options)


@pytest.mark.parametrize(
    "exp_ulps, reciprocal_ulps", [(0, 0), (1, 0), (-1, 0), (2, 0), (-2, 0), (0, 1), (0, -1), (1, 1), (2, -1)]
)
@pytest.mark.parametrize("namespace", [jaxloss, jaxloss.forward], ids=["jaxloss", "forward"])
def test_poly_loss_at_epsilon_minus_one_keeps_its_bounds_when_exp_and_division_are_approximate(
    poly_sweep, namespace, exp_ulps, reciprocal_ulps
):
    draw, sweep = poly_sweep
    x, y = jnp.asarray(draw.inputs, jnp.float32), jnp.asarray(draw.targets, jnp.float32)
    cost = lambda a, b: namespace.poly_loss_cross_entropy(a, b, epsilon=-1.0)  # noqa: E731
    results = _evaluate(cost, x, y, _approximate(exp_ulps, reciprocal_ulps))
    for part in precision.parts_of(draw):
        part_sweep = precision.subset(sweep, part)
        scored = precision.score(tuple(r[part.start : part.stop] for r in results), part_sweep, np.float32, np.float32)
        assert scored.nonfinite == 0, part.labels
        assert scored.loss <= part_sweep.loss_target, (part.labels, scored.loss, scored.worst_input)
        assert scored.grad <= precision.GRAD_TARGET_ULPS, (part.labels, scored.grad, scored.worst_input)
        assert scored.label_grad <= precision.GRAD_TARGET_ULPS, (part.labels, scored.label_grad, scored.worst_input)
