"""The README's promises that code can keep: its two commands and its training example."""

import pathlib
import re
import subprocess
import sys

import jax

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
