"""The README's promises that code can keep: its two commands, its example, its figure and its length; and the
command line it names. The docs pages' examples and regions are tested in tests/test_docs.py."""

import pathlib
import re
import subprocess
import sys

import jax
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


def test_readme_is_a_front_page_of_at_most_200_lines_with_one_figure_and_no_ci_history():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    (figure,) = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert (README.parent / figure).is_file() and figure.endswith("ulp_error.png")
    assert "<!-- begin:" not in text  # the measured regions live in the docs pages
    assert ".ci/run` took" not in text and "tests passed in" not in text  # past CI runs: docs/history.md
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (README.parent / link).exists(), link


def test_readme_training_example_runs_and_lowers_the_loss():
    (example,) = [b for b in _blocks("python") if "optimizer" in b]
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        namespace: dict = {}
        exec(compile(example, str(README), "exec"), namespace)
    assert float(namespace["loss"]) < 0.5


@pytest.mark.parametrize("number", range(2))
def test_every_python_block_of_the_readme_runs(number):
    blocks = _blocks("python")
    assert len(blocks) == 2  # the one-line switch from optax, and the training example
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        exec(compile(blocks[number], str(README), "exec"), {})


def test_jaxloss_command_runs_verify_and_reports_success():
    # Two costs, one dtype: the command's plumbing and its verdict. .ci/run runs the whole of it (every cost,
    # float32 and float64) in the accelerators' portable forms, and tests/test_numerics.py scores every cost
    # against mpmath in the CPU's forms.
    costs = ("softmax_cross_entropy_with_integer_labels", "sigmoid_focal_loss")
    result = subprocess.run(
        [sys.executable, "-m", "jaxloss", "verify", "--dtype", "float32", *(f"--cost={cost}" for cost in costs)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout
    assert all(cost in result.stdout for cost in costs)


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
    # The docs pages' regions regenerate from this record, and only the regions change.
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
