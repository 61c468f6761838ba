"""What an editor and a type checker see: signatures of the twins, and the way from a public cost to its formula."""

import inspect
import pathlib
import re
import subprocess
import sys

import pytest

import jaxloss
from jaxloss import _costs, _rules

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("namespace", [jaxloss.forward, jaxloss.reference], ids=["forward", "reference"])
@pytest.mark.parametrize("name", _costs.NAMES)
def test_twins_show_their_costs_full_signature(namespace, name):
    twin, cost = getattr(namespace, name), getattr(jaxloss, name)
    assert twin is not cost
    assert inspect.signature(twin) == inspect.signature(cost)
    assert list(inspect.signature(twin).parameters)[:2] != ["args", "kwargs"]
    assert inspect.signature(twin).parameters  # not (*args, **kwargs)


def test_mypy_reveals_the_twins_and_the_seeds_signatures(tmp_path):
    """One mypy run (about 10 s) for jaxloss.forward's and jaxloss.reference's twins and the seeds' options."""
    pytest.importorskip("mypy")
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "import jaxloss\n"
        "from jaxloss import seeds\n"
        "reveal_type(jaxloss.forward.softmax_cross_entropy_with_integer_labels)\n"
        "reveal_type(jaxloss.reference.sigmoid_focal_loss)\n"
        "reveal_type(seeds.softmax_cross_entropy_with_integer_labels_grad)\n"
        "reveal_type(seeds.poly_loss_cross_entropy_labels_grad)\n"
        "jaxloss.forward.softmax_cross_entropy(1.0, 1.0, not_an_option=1)\n"
        "seeds.sigmoid_focal_loss_grad(1.0, 1.0, gama=2.0)\n"
        "seeds.sigmoid_binary_cross_entropy_grad(1.0, 1.0, 0.1)\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--config-file", "/dev/null", str(snippet)],
        capture_output=True,
        text=True,
        env={"MYPYPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
        timeout=300,
    )
    out = result.stdout
    revealed = re.findall(r'Revealed type is "(.*)"', out)
    assert len(revealed) == 4, out + result.stderr
    twin, reference, integer_seed, poly_seed = revealed
    assert "label_smoothing:" in twin and "ignore_index: int | None" in twin, twin
    assert "alpha:" in reference and "gamma:" in reference, reference
    assert "label_smoothing:" in integer_seed and "ignore_index: int | None" in integer_seed, integer_seed
    assert "**" not in integer_seed and "**" not in poly_seed
    assert "epsilon:" in poly_seed and "axis:" in poly_seed and "where:" in poly_seed, poly_seed
    assert 'Unexpected keyword argument "not_an_option"' in out, out  # the checker sees the options
    assert 'Unexpected keyword argument "gama"' in out, out
    assert 'Too many positional arguments for "sigmoid_binary_cross_entropy_grad"' in out, out


def _rules_of(module):
    return {name: value for name, value in vars(module).items() if isinstance(value, _rules.Rule)}


@pytest.mark.parametrize("name", _costs.NAMES)
def test_a_public_cost_calls_a_rule_declared_beside_its_formula_and_seed(name):
    """Go-to-definition from the public cost's body reaches the formula in one hop: the cost calls
    a module-level Rule by name, whose forward formula carries ``@rule`` and whose seed is declared
    with ``@<rule>.defseed`` right below it, in the same file."""
    cost = getattr(jaxloss, name)
    module = sys.modules[cost.__module__]
    rules = _rules_of(module)
    source = inspect.getsource(cost)
    called = [rule_name for rule_name in rules if re.search(rf"\b{rule_name}\b", source)]
    if not called:  # the sum over labels passes its element-wise rule on (``summed_over``)
        assert "summed_over(" in source, name
        called = [rule_name for rule_name in rules if re.search(rf"summed_over\(\s*{rule_name}\b", source)]
    assert called, name
    for rule_name in called:
        rule = rules[rule_name]
        file = inspect.getsourcefile(rule.forward)
        assert file == inspect.getsourcefile(rule.seed) == inspect.getsourcefile(cost)
        forward_lines, forward_start = inspect.getsourcelines(rule.forward)
        seed_lines, seed_start = inspect.getsourcelines(rule.seed)
        assert forward_lines[0].startswith("@rule(reference=")
        assert seed_lines[0].strip() == f"@{rule_name}.defseed"
        assert seed_start >= forward_start + len(forward_lines)
        between = pathlib.Path(file).read_text().splitlines()[forward_start + len(forward_lines) - 1 : seed_start - 1]
        assert all(not line.strip() for line in between), between  # nothing between formula and seed
