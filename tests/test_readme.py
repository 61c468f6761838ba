"""The README's promises that code can keep: its two commands, its examples and its doctests."""

import doctest
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
CI = pathlib.Path(__file__).resolve().parent.parent / ".ci" / "run"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = _blocks("bash")
    assert len(commands) == 2
    verify, tests = (c.strip() for c in commands)
    assert verify.endswith("jaxloss verify") and "python3 -m venv" in verify
    assert tests.endswith("pytest") and "'.[test," in tests
    assert tests in CI.read_text()


def test_readme_training_example_runs_and_lowers_the_loss():
    (example,) = [b for b in _blocks("python") if "optimizer" in b]
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        namespace: dict = {}
        exec(compile(example, str(README), "exec"), namespace)
    assert float(namespace["loss"]) < 0.5


def test_readme_doctest_lines_run_and_print_what_the_readme_says():
    (block,) = _blocks("pycon")
    test = doctest.DocTestParser().get_doctest(block, {}, "README", str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted >= 6 and result.failed == 0, result


def test_readme_grad_norms_example_prints_what_its_comment_says(capsys):
    (example,) = [b for b in _blocks("python") if "grad_norms" in b]
    exec(compile(example, str(README), "exec"), {})
    printed = capsys.readouterr().out.strip()
    comment = next(line for line in example.splitlines() if line.startswith("print("))
    assert printed == comment.split("# ")[1].split(":")[0]


def test_readme_distillation_example_trains_student_and_teacher_toward_each_other():
    (example,) = [b for b in _blocks("python") if "distill" in b]
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        namespace: dict = {}
        exec(compile(example, str(README), "exec"), namespace)
    before, after = float(namespace["before"]), float(namespace["distill"](namespace["params"], namespace["x"]))
    assert after < 0.01 * before
    assert not np.allclose(
        namespace["params"]["teacher"], jax.random.normal(jax.random.split(jax.random.key(0), 3)[1], (8, 5))
    )


def test_jaxloss_command_runs_verify_and_reports_success():
    result = subprocess.run(
        [sys.executable, "-m", "jaxloss", "verify", "--dtype", "float32"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout


def test_readme_sharded_step_runs_and_equals_one_device():
    """The README's data- and tensor-parallel step, on a 2 x 4 mesh of host devices."""
    if len(jax.devices()) < 8:  # the README builds its mesh from the default backend's devices
        pytest.skip("needs 8 devices of the default backend (CPU runs get 8 from conftest)")
    (example,) = [b for b in _blocks("python") if "shard_map" in b]
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(16, 8)).astype(np.float32)
    weight = rng.normal(size=(8, 32)).astype(np.float32)
    labels = (np.arange(16) * 7 % 32).astype(np.int32)
    namespace: dict = {"jax": jax, "jaxloss": jaxloss, "data": 2, "model": 4}
    namespace.update(hidden=hidden, weight=weight, labels=labels)
    exec(compile(example, str(README), "exec"), namespace)
    want, (want_hidden, want_weight) = jax.value_and_grad(
        lambda h, w: jnp.mean(jaxloss.linear_cross_entropy(h, w, labels)), (0, 1)
    )(hidden, weight)
    np.testing.assert_allclose(float(namespace["loss"]), float(want), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(namespace["d_hidden"]), want_hidden, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(namespace["d_weight"]), want_weight, rtol=1e-4, atol=1e-6)


def test_the_command_line_explains_itself_and_prints_its_versions():
    import jaxlib

    run = [sys.executable, "-m", "jaxloss"]
    helped = subprocess.run([*run, "--help"], capture_output=True, text=True, check=True).stdout
    assert "verify" in helped and "bench" in helped and "--version" in helped and "mpmath" in helped
    version = subprocess.run([*run, "--version"], capture_output=True, text=True, check=True).stdout
    assert version.strip() == f"jaxloss {jaxloss.__version__} (jax {jax.__version__}, jaxlib {jaxlib.__version__})"
    options = subprocess.run([*run, "verify", "--help"], capture_output=True, text=True, check=True).stdout
    assert "seed of the random rows" in options and "one dtype only" in options and "--cost" in options


def test_verify_json_records_the_versions_and_the_summary_and_it_shows_progress(tmp_path):
    import json

    path = tmp_path / "verify.json"
    command = [sys.executable, "-m", "jaxloss", "verify", "--dtype", "float32", "--cost", "binary_cross_entropy"]
    result = subprocess.run([*command, "--json", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads(path.read_text())
    assert record["versions"].startswith(f"jaxloss {jaxloss.__version__} (jax {jax.__version__}")
    assert record["failed"] == 0 and record["passed"] == len(record["agreement"]) + len(record["precision"]) > 0
    assert {row["cost"] for row in record["precision"]} == {"binary_cross_entropy"}
    assert record["machine"] and record["seconds"] > 0 and record["command"].startswith("jaxloss verify --dtype")
    # The README's regions regenerate from this record, and only the regions change.
    from jaxloss.tools import readme

    regions = readme.verify_regions(record)
    assert "binary_cross_entropy" in regions["verify-float32"] and record["machine"] in regions["verify-summary"]
    text = "keep\n<!-- begin: verify-float32 -->\nold\n<!-- end: verify-float32 -->\nkeep too\n"
    rewritten = readme.replace_regions(text, {"verify-float32": regions["verify-float32"]})
    assert rewritten.startswith("keep\n<!-- begin: verify-float32 -->\n```\n") and "old" not in rewritten
    assert rewritten.endswith("```\n<!-- end: verify-float32 -->\nkeep too\n")
    with pytest.raises(ValueError, match="no region 'verify-summary'"):
        readme.replace_regions(text, {"verify-summary": "x"})
    # Progress on stderr: one line a dtype of the agreement part and one a sweep, as bench does.
    assert "  agreement float32: 2 cases ...\n" in result.stderr
    assert "  precision binary_cross_entropy hard float32 ...\n" in result.stderr


def test_readme_has_every_region_the_readme_tool_rewrites():
    from jaxloss.tools import readme

    text = README.read_text()
    names = [*readme.verify_regions(_RECORD), "bench-summary", "bench-steps", "bench-costs", "bench-linear-memory"]
    for name in names:
        assert text.count(f"<!-- begin: {name} -->\n") == 1 and text.count(f"\n<!-- end: {name} -->") == 1, name


_RECORD = {
    "passed": 1,
    "failed": 0,
    "command": "jaxloss verify",
    "machine": "a CPU",
    "versions": "v",
    "seconds": 1.0,
    "precision": [],
}


def test_verify_plot_fails_first_without_matplotlib_naming_the_extra(tmp_path):
    script = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from jaxloss.tools import verify\n"
        f"verify.main(['--plot', {str(tmp_path / 'plot.png')!r}])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--plot needs matplotlib: pip install 'jaxloss[plot]'" in result.stderr
    assert "precision" not in result.stderr  # it stopped before computing anything


def test_verify_plot_has_a_panel_a_cost_with_the_bounds_and_the_zero_floor_in_the_legend(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from jaxloss.tools import verify

    xs = [-10.0, 0.0, 10.0]
    curves = {
        cost: {name: (xs, [0.0, 1.0, 3.0]) for name in ("jaxloss", "forward", "reference", "optax")}
        for cost in verify.PLOTTED
    }
    verify.save_plot(curves, str(tmp_path / "plot.png"))
    fig = plt.gcf()
    assert (tmp_path / "plot.png").stat().st_size > 0
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == [f"{cost}, float32" for cost in verify.PLOTTED]
    (legend,) = fig.legends
    labels = [text.get_text() for text in legend.get_texts()]
    assert {"jaxloss", "forward", "loss bound, 2 ulp", "gradient bound, 4 ulp"} <= set(labels), labels
    assert any(label.startswith("exact (0 ulp), drawn at") for label in labels), labels
    for ax in axes:
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert lines["jaxloss"].get_zorder() > lines["forward"].get_zorder()  # jaxloss is drawn on top
        assert lines["jaxloss"].get_markerfacecolor() == "none"  # and hollow, so forward shows inside
        assert min(lines["jaxloss"].get_ydata()) == verify.FLOOR  # a zero error sits on the labelled floor
        if ax.get_xscale() == "symlog":
            assert len(ax.get_xticks()) <= 7  # sparse enough not to run into each other
    plt.close(fig)


def test_readme_tool_makes_the_memory_table_from_a_memory_plot_run_and_refuses_other_runs():
    from jaxloss.tools import readme

    record = {**_RECORD, "command": "jaxloss bench --memory-plot m.png", "results": [], "steps": []}
    with pytest.raises(ValueError, match="no linear_memory"):
        readme.memory_regions(record)
    record["linear_memory"] = {
        "rows": 8,
        "dim": 4,
        "vocabs": [16, 32],
        "jaxloss": [1.0, 1.0],
        "jaxloss mean": [1.0, 2.0],
        "unfused": [2.0, 4.0],
    }
    table = readme.memory_regions(record)["bench-linear-memory"]
    assert table.startswith("From `jaxloss bench --memory-plot m.png` on a CPU") and "N=8, D=4" in table
    assert "| 16 | 1.0 MiB | 1.0 MiB | 2 MiB | 2×, 2.0× |" in table
    assert "| 32 | 1.0 MiB | 2.0 MiB | 4 MiB | 4×, 2.0× |" in table
