"""The documentation's promises that code can keep: every code block of its pages runs, the examples
do what their text says, the measured regions are where the readme tool rewrites them, and the API
reference has every public name."""

import doctest
import importlib
import importlib.util
import inspect
import io
import pathlib
import re
import subprocess
import sys
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BUILT = DOCS / "_build" / "html"
# The pages written by hand: not the build, nor the notebooks docs/conf.py copies in at build time.
PAGES = sorted(p for p in DOCS.rglob("*.md") if p.relative_to(DOCS).parts[0] not in ("_build", "notebooks"))
MODULES = ("jaxloss", "jaxloss.forward", "jaxloss.reference", "jaxloss.seeds", "jaxloss.sharded", "jaxloss.grad_norms")


def _blocks(page: pathlib.Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", page.read_text(), flags=re.DOTALL)


def _page(name: str) -> pathlib.Path:
    return DOCS / name


def _one_block(page: str, language: str, marker: str) -> str:
    (block,) = [b for b in _blocks(_page(page), language) if marker in b]
    return block


def _run(block: str, page: pathlib.Path, namespace: dict | None = None) -> dict:
    """Executes a block as a reader would paste it: broadcasting and dtype promotion as JAX's defaults."""
    namespace = {} if namespace is None else namespace
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        exec(compile(block, str(page), "exec"), namespace)
    return namespace


CODE_BLOCKS = [
    pytest.param(page, language, block, id=f"{page.relative_to(DOCS)}:{language}:{number}")
    for page in PAGES
    for language in ("python", "pycon")
    for number, block in enumerate(_blocks(page, language))
]


def test_the_docs_have_pages_and_code_blocks():
    names = {str(p.relative_to(DOCS)) for p in PAGES}
    for name in ("index.md", "getting_started.md", "costs.md", "numerics.md", "performance.md", "api/index.md"):
        assert name in names, name
    assert len(CODE_BLOCKS) >= 8


@pytest.mark.parametrize(("page", "language", "block"), CODE_BLOCKS)
def test_every_code_block_of_the_docs_runs(page, language, block, capsys):
    if "shard_map" in block:
        pytest.skip("the sharded step needs 8 devices and its inputs: test_sharded_step_runs_and_equals_one_device")
    if language == "pycon":
        test = doctest.DocTestParser().get_doctest(block, {}, page.name, str(page), 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        output = io.StringIO()
        with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
            runner.run(test, out=output.write)
        result = runner.summarize(verbose=False)
        assert result.attempted > 0 and result.failed == 0, output.getvalue()
    else:
        _run(block, page)


def test_training_example_runs_and_lowers_the_loss():
    example = _one_block("getting_started.md", "python", "optimizer")
    namespace = _run(example, _page("getting_started.md"))
    assert float(namespace["loss"]) < 0.5


def test_doctest_lines_run_and_print_what_the_page_says():
    (block,) = _blocks(_page("costs.md"), "pycon")
    test = doctest.DocTestParser().get_doctest(block, {}, "costs.md", str(_page("costs.md")), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted >= 6 and result.failed == 0, result


def test_grad_norms_example_prints_what_its_comment_says(capsys):
    example = _one_block("per_example.md", "python", "grad_norms")
    _run(example, _page("per_example.md"))
    printed = capsys.readouterr().out.strip()
    comment = next(line for line in example.splitlines() if line.startswith("print("))
    assert printed == comment.split("# ")[1].split(":")[0]


def test_distillation_example_trains_student_and_teacher_toward_each_other():
    example = _one_block("costs.md", "python", "distill")
    namespace = _run(example, _page("costs.md"))
    before, after = float(namespace["before"]), float(namespace["distill"](namespace["params"], namespace["x"]))
    assert after < 0.01 * before
    assert not np.allclose(
        namespace["params"]["teacher"], jax.random.normal(jax.random.split(jax.random.key(0), 3)[1], (8, 5))
    )


def test_options_example_is_torchs_mean_over_the_kept_examples():
    example = _one_block("options.md", "python", "ignore_index=-100")
    namespace = _run(example, _page("options.md"))
    loss, labels, weights = namespace["loss"], namespace["labels"], namespace["class_weights"]
    kept = labels != -100
    assert float(loss[~kept].sum()) == 0.0
    want = float(loss[kept].sum() / weights[labels[kept]].sum())  # the losses carry their weights already
    np.testing.assert_allclose(float(namespace["objective"]), want, rtol=1e-6)


def test_linear_cross_entropy_example_equals_the_unfused_cost():
    example = _one_block("large_vocabularies.md", "python", "linear_cross_entropy")
    namespace = _run(example, _page("large_vocabularies.md"))
    hidden, weight, labels = namespace["hidden"], namespace["weight"], namespace["labels"]
    want = jaxloss.softmax_cross_entropy_with_integer_labels(hidden @ weight, labels)
    np.testing.assert_allclose(namespace["losses"], want, rtol=1e-5)
    np.testing.assert_allclose(float(namespace["loss"]), float(want.mean()), rtol=1e-5)
    assert namespace["stats"].lse.shape == labels.shape


def test_sharded_step_runs_and_equals_one_device():
    """The data- and tensor-parallel step of docs/sharded.md, on a 2 x 4 mesh of host devices."""
    if len(jax.devices()) < 8:  # the page builds its mesh from the default backend's devices
        pytest.skip("needs 8 devices of the default backend (CPU runs get 8 from conftest)")
    example = _one_block("sharded.md", "python", "shard_map")
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(16, 8)).astype(np.float32)
    weight = rng.normal(size=(8, 32)).astype(np.float32)
    labels = (np.arange(16) * 7 % 32).astype(np.int32)
    namespace: dict = {"data": 2, "model": 4, "hidden": hidden, "weight": weight, "labels": labels}
    exec(compile(example, str(_page("sharded.md")), "exec"), namespace)
    want, (want_hidden, want_weight) = jax.value_and_grad(
        lambda h, w: jnp.mean(jaxloss.linear_cross_entropy(h, w, labels)), (0, 1)
    )(hidden, weight)
    np.testing.assert_allclose(float(namespace["loss"]), float(want), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(namespace["d_hidden"]), want_hidden, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(namespace["d_weight"]), want_weight, rtol=1e-4, atol=1e-6)


_RECORD = {
    "passed": 1,
    "failed": 0,
    "command": "jaxloss verify",
    "machine": "a CPU",
    "versions": "v",
    "seconds": 1.0,
    "precision": [],
}


def test_the_readme_tools_pages_hold_each_region_once_and_the_readme_none():
    from jaxloss.tools import readme

    names = [*readme.verify_regions(_RECORD), "bench-summary", "bench-steps", "bench-costs", "bench-linear-memory"]
    texts = {page: (ROOT / page).read_text() for page in readme.PAGES}
    for name in names:
        begins = sum(text.count(f"<!-- begin: {name} -->\n") for text in texts.values())
        ends = sum(text.count(f"\n<!-- end: {name} -->") for text in texts.values())
        assert begins == 1 and ends == 1, name
    assert "<!-- begin:" not in (ROOT / "README.md").read_text()


def test_the_readme_tool_rewrites_each_region_in_the_page_that_holds_it(tmp_path):
    from jaxloss.tools import readme

    first, second = tmp_path / "first.md", tmp_path / "second.md"
    first.write_text("a\n<!-- begin: verify-summary -->\nold\n<!-- end: verify-summary -->\nb\n")
    second.write_text("c\n<!-- begin: bench-summary -->\nold\n<!-- end: bench-summary -->\n")
    where = readme.rewrite_pages([str(first), str(second)], {"verify-summary": "new 1", "bench-summary": "new 2"})
    assert where == {str(first): ["verify-summary"], str(second): ["bench-summary"]}
    assert first.read_text() == "a\n<!-- begin: verify-summary -->\nnew 1\n<!-- end: verify-summary -->\nb\n"
    assert second.read_text() == "c\n<!-- begin: bench-summary -->\nnew 2\n<!-- end: bench-summary -->\n"
    with pytest.raises(ValueError, match="'bench-steps': no page"):
        readme.rewrite_pages([str(first), str(second)], {"verify-summary": "x", "bench-steps": "y"})
    assert "new 1" in first.read_text()  # nothing written when one region is missing
    third = tmp_path / "third.md"
    third.write_text(first.read_text())
    with pytest.raises(ValueError, match=r"'verify-summary': .*first\.md, .*third\.md of .* holds it"):
        readme.rewrite_pages([str(first), str(second), str(third)], {"verify-summary": "x"})


def _public_names() -> dict[str, str]:
    """Every public name of the six namespaces, with the role Sphinx gives it."""
    names = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        names[module_name] = "py:module"
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                names[obj.__name__] = "py:module"
            else:
                names[f"{module_name}.{name}"] = "py:class" if inspect.isclass(obj) else "py:function"
    return names


def _inventory(path: pathlib.Path) -> dict[str, tuple[str, str]]:
    """Sphinx's objects.inv (version 2: four header lines, then zlib lines 'name role priority uri
    display'), as name -> (role, uri)."""
    data = path.read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = data.index(b"\n", header_end) + 1
    assert data.startswith(b"# Sphinx inventory version 2"), data[:40]
    entries = {}
    for line in zlib.decompress(data[header_end:]).decode().splitlines():
        match = re.match(r"(.+?)\s+(\S+)\s+(-?\d+)\s+?(\S*)\s+(.*)", line)
        if match:
            entries[match.group(1)] = (match.group(2), match.group(4))
    return entries


def _newest_source() -> float:
    sources = [*ROOT.joinpath("jaxloss").rglob("*.py"), *PAGES, DOCS / "conf.py"]
    return max(path.stat().st_mtime for path in sources)


def test_the_api_reference_has_every_public_name(tmp_path):
    """From docs/_build/html when it is newer than the sources (.ci/run builds it before the suite),
    else from a build of its own when Sphinx is installed (about 10 s)."""
    inventory = BUILT / "objects.inv"
    if not (inventory.exists() and inventory.stat().st_mtime >= _newest_source()):
        if importlib.util.find_spec("sphinx") is None or importlib.util.find_spec("myst_nb") is None:
            pytest.skip("Sphinx is not installed: pip install -e '.[docs]' (CI does, and builds the docs)")
        outputs = [str(DOCS), str(tmp_path / "html")]
        build = subprocess.run(
            [sys.executable, "-m", "sphinx", "-q", "-b", "html", "-d", str(tmp_path / "doctrees"), *outputs],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert build.returncode == 0, build.stdout + build.stderr
        inventory = tmp_path / "html" / "objects.inv"
    entries = _inventory(inventory)
    missing = []
    for name, role in _public_names().items():
        entry = entries.get(name)
        if entry is None or entry[0] != role or not entry[1].startswith("api/"):
            missing.append(f"{name} ({role}): {entry}")
    assert not missing, "not in the API reference: " + "; ".join(missing)


def test_the_inventory_reader_reads_what_sphinx_writes(tmp_path):
    lines = "jaxloss.mean py:function 1 api/jaxloss.html#$ -\njaxloss std:label -1 index.html#x The page\n"
    path = tmp_path / "objects.inv"
    path.write_bytes(
        b"# Sphinx inventory version 2\n# Project: p\n# Version: v\n# The remainder is zlib\n"
        + zlib.compress(lines.encode())
    )
    assert _inventory(path) == {
        "jaxloss.mean": ("py:function", "api/jaxloss.html#$"),
        "jaxloss": ("std:label", "index.html#x"),
    }


def test_the_notebooks_come_from_notebooks_folder_only():
    """docs/conf.py copies notebooks/ at build time; git ignores the copy (one source in git)."""
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "docs/notebooks/01_article_equations.ipynb"], cwd=ROOT, check=False
    )
    if ignored.returncode == 128:
        pytest.skip("not a git checkout")
    assert ignored.returncode == 0
    listed = (DOCS / "notebooks.md").read_text()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"notebooks/{notebook.stem}\n" in listed, notebook.name
