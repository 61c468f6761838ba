"""``jaxloss bench --lm-head`` and ``python -m jaxloss.tools.device_check``, on the CPU at tiny sizes: the rows,
their ratios and losses, the anchors' reasons, the JSON, the device check's steps, limits and files. No timing
is asserted."""

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import pytest

from jaxloss.tools import bench, device_check

JAX_ROWS = ("optax unfused", "jaxloss unfused", "jaxloss fused mean", "jaxloss fused none")


def _table(out: str) -> dict[str, list[str]]:
    """The LM-head table's rows by implementation: the cells after the name."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:3] == ["impl", "ms", "optax/impl"])
    rows = {}
    for line in lines[start + 1 :]:
        name = next((n for n in (*JAX_ROWS, *bench.ANCHORS) if line.startswith(n + " ")), None)
        if name is None:
            break
        rows[name] = line[len(name) :].split()
    return rows


def test_lm_head_prints_every_row_with_its_ratio_and_one_loss_and_says_why_each_anchor_is_missing(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "torch", None)  # torch absent, as on this machine, even where installed
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # the command sets it when unset
    every = bench.implementations  # the isolated cost: jaxloss and optax only, for time
    monkeypatch.setattr(bench, "implementations", lambda case: {k: every(case)[k] for k in ("jaxloss", "optax")})
    path = tmp_path / "head.json"
    args = ["--lm-head", "--lm-head-size", "32,16,256", "--repeats", "2", "--json", str(path)]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"jaxloss {bench.jaxloss.__version__} bench --lm-head on cpu (")
    assert "N=32 D=16 V=256 float32" in out
    rows = _table(out)
    assert set(rows) == set(JAX_ROWS)
    for name, (ms, ratio, temp, unit, tflops, _loss) in rows.items():
        assert float(ms) > 0 and float(ratio) > 0 and float(temp) >= 0 and unit in ("MiB", "GiB"), name
        assert float(tflops) > 0, name
    assert rows["optax unfused"][1] == "1.00"
    losses = [float(cells[-1]) for cells in rows.values()]  # one objective: fused and unfused agree
    assert max(losses) - min(losses) <= 1e-5 * abs(losses[0])
    for anchor in bench.ANCHORS:
        assert f"\n{anchor}: not importable (" in out, anchor
    # Then the isolated cost at the head's logits, beside optax.
    isolated = [line for line in out.splitlines() if line.startswith(bench.INTEGER_CASE.cost + " ")]
    assert {line.split()[3] for line in isolated} == {"jaxloss", "optax"}
    assert all(line.split()[1] == "32x256" for line in isolated)

    record = json.loads(path.read_text())
    assert {"versions", "machine", "command", "backend", "device", "interrupted", "lm_head", "results"} <= set(record)
    assert record["backend"] == "cpu" and record["interrupted"] is False
    assert record["command"] == "jaxloss bench " + " ".join(args)
    head = record["lm_head"]
    assert (head["tokens"], head["width"], head["vocab"], head["dtype"]) == (32, 16, 256, "float32")
    by_impl = {row["impl"]: row for row in head["rows"]}
    assert list(by_impl) == [*JAX_ROWS, *bench.ANCHORS]
    for name in JAX_ROWS:
        row = by_impl[name]
        assert row["status"] == "ok" and row["framework"] == "jax" and row["ms"] > 0 and row["temp_bytes"] >= 0
    assert by_impl["optax unfused"]["optax_over_impl"] == 1.0
    for name in bench.ANCHORS:
        row = by_impl[name]
        assert (row["status"], row["ms"]) == ("not importable", None) and "torch" in row["reason"], row
    assert {(r["shape"][0], r["shape"][1]) for r in record["results"]} == {(32, 256)}
    assert {r["implementation"] for r in record["results"]} == {"jaxloss", "optax"}


def test_lm_head_defaults_are_llama_3_on_a_gpu_and_small_on_a_cpu():
    assert bench.lm_head_settings("gpu") == ((8192, 4096, 128256), "bfloat16", ("float32", "bfloat16"), 10)
    assert bench.isolated_shapes(8192, 128256) == [(8192, 32768), (8192, 128256)]
    (rows, dim, vocab), dtype, isolated, _ = bench.lm_head_settings("cpu")
    assert dtype == "float32" and isolated == ("float32",) and rows * dim * vocab <= 2**32
    assert bench.lm_head_settings("gpu", (8, 4, 16), "float32", 3) == ((8, 4, 16), "float32", ("float32",), 3)


@pytest.mark.parametrize("text", ["1,2", "1,2,3,4", "0,4,16", "a,b,c", ""])
def test_lm_head_size_rejects_anything_but_three_positive_integers(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected"):
        bench.parse_size(text)


def test_lm_head_options_without_lm_head_are_an_error(capsys):
    with pytest.raises(SystemExit) as raised:
        bench.main(["--lm-head-size", "8,4,16"])
    assert raised.value.code == 2 and "go with --lm-head" in capsys.readouterr().err


def test_an_interrupted_bench_prints_and_saves_the_rows_so_far(tmp_path, capsys, monkeypatch):
    measured = bench.Result("a cost", (2, 3), "float32", "optax", 1.0, 1.0, 0.0, 1.0)
    calls = []

    def bench_case(*args):
        calls.append(args)
        if len(calls) > 1:
            raise KeyboardInterrupt  # as the device check's SIGINT at its limit
        return [measured]

    monkeypatch.setattr(bench, "bench_case", bench_case)
    path = tmp_path / "bench.json"
    args = ["--quick", "--cost", bench.INTEGER_CASE.cost, "--repeats", "1", "--json", str(path)]
    assert bench.main(args) == 130
    captured = capsys.readouterr()
    assert "interrupted" in captured.err and any(line.startswith("a cost ") for line in captured.out.splitlines())
    record = json.loads(path.read_text())
    assert record["interrupted"] is True and [r["cost"] for r in record["results"]] == ["a cost"]


def test_torch_anchors_without_torch_run_nothing_and_name_the_import_that_failed(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    hidden, weight = jnp.ones((4, 3)), jnp.ones((3, 5))
    steps, rows, description = bench.torch_anchors(hidden, weight, jnp.zeros(4, jnp.int32))
    assert steps == {} and description == ""
    assert [(r.impl, r.status) for r in rows] == [(name, "not importable") for name in bench.ANCHORS]
    assert all(r.reason.startswith(("ImportError", "ModuleNotFoundError")) for r in rows)


# --- python -m jaxloss.tools.device_check ------------------------------------------------------------


@pytest.mark.parametrize("quick", [False, True])
def test_device_check_dry_run_lists_each_step_and_runs_nothing(tmp_path, capsys, quick):
    out = tmp_path / "out"
    assert device_check.main(["--dry-run", "--out", str(out), *(["--quick"] if quick else [])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert not out.exists()  # nothing ran, nothing was written
    commands = {line.split(" ", 1)[0]: line for line in lines[1:]}
    assert list(commands) == ["describe", "verify", "lm-head", "per-example", "verify-full", "bench"]
    assert " -m jaxloss bench --per-example" in commands["per-example"] and "--json" not in commands["per-example"]
    assert " -m jaxloss verify " in commands["verify"] and " --full " in commands["verify-full"]
    assert " -m jaxloss bench --lm-head " in commands["lm-head"] and " -m jaxloss bench " in commands["bench"]
    for name in ("verify", "lm-head", "verify-full", "bench"):
        assert f" --json {out / name}.json" in commands[name], commands[name]
    assert ("--lm-head-size" in commands["lm-head"]) is quick  # at a GPU's sizes by default
    limits = [step.limit_s for step in device_check.steps(quick)]
    assert all(0 < limit <= 600 for limit in limits)
    if not quick:  # the budget caps the whole below the device's 10 minutes a call
        assert device_check.BUDGET_S + device_check.GRACE_S < 600 < sum(limits) + 60


def test_device_check_runs_a_step_and_writes_its_output_and_summary(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--quick", "--only", "describe", "--out", str(out), "--wheels", str(tmp_path / "no-wheels")]
    assert device_check.main(argv) == 0
    printed = capsys.readouterr().out
    assert "== describe: ok in " in printed and "jax devices: [" in printed
    summary = json.loads((out / "summary.json").read_text())
    [step] = summary["steps"]
    assert (step["name"], step["status"], summary["wheels"]) == ("describe", "ok", [])
    described = (out / "describe.txt").read_text()
    assert f"jax {jax.__version__}" in described and "optax " in described and "torch" in described


def test_device_check_interrupts_a_step_at_its_limit_then_kills_it(tmp_path):
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "print('started', flush=True)\n"
        "try:\n    time.sleep(60)\n"
        "except KeyboardInterrupt:\n    print('interrupted: saving', flush=True)\n    time.sleep(60)\n"
    )
    outcome = device_check.run_step(
        "slow", [sys.executable, "-c", script], tmp_path, limit_s=1.5, env=dict(os.environ), grace_s=1.0
    )
    assert outcome.status == "timed out" and outcome.seconds < 30
    assert (tmp_path / "slow.txt").read_text().splitlines() == ["started", "interrupted: saving"]


def test_device_check_unpacks_the_wheels_it_is_given(tmp_path):
    import zipfile

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "anchor-1.0-py3-none-any.whl", "w") as archive:
        archive.writestr("anchor_module/__init__.py", "VALUE = 7\n")
    site, names = device_check.unpack_wheels(wheels)
    assert names == ["anchor-1.0-py3-none-any.whl"] and site is not None
    assert (site / "anchor_module" / "__init__.py").read_text() == "VALUE = 7\n"
    env = device_check.environment(site, tmp_path / "cache")
    assert env["PYTHONPATH"].split(os.pathsep)[1] == str(site)
    assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] == os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    assert device_check.unpack_wheels(tmp_path / "absent") == (None, [])
