"""``python -m jaxloss.tools.device_check``: jaxloss on a GPU machine in one call, everything under ``$OUT``.

The steps, in this order, each in a process of its own with its own time limit, so that one hang does not eat
the rest:

1. ``describe``: the GPU as ``nvidia-smi`` names it, the versions of Python, jax, jaxlib, optax, mpmath, torch,
   triton, Liger-Kernel and Cut Cross-Entropy, and the devices JAX and torch see;
2. ``verify``: ``jaxloss verify``;
3. ``lm-head``: ``jaxloss bench --lm-head``, the LM head at Llama 3's sizes beside optax and torch's anchors
   (torch, ``torch.compile``, Liger-Kernel, Cut Cross-Entropy), then the isolated cost at 8192x32768 and
   8192x128256;
4. ``per-example``: ``jaxloss bench --per-example``, the per-example gradient norms and clipping beside
   ``vmap(grad)``, and the fused head's step with them against its plain step;
5. ``verify-full``: ``jaxloss verify --full`` (bfloat16 and float16 too);
6. ``bench``: ``jaxloss bench``, last: its tables are the least new, and when its time runs out it still prints
   and saves the rows measured so far.

Each step writes ``NAME.txt`` (its output), ``NAME.log`` (its progress, on stderr) and, but ``describe``,
``NAME.json`` under the output folder: ``--out``, else ``$OUT``, else a new temporary folder.
``summary.json`` there says, after each step, what ran, its exit status and its seconds. A step past its limit
gets SIGINT (``jaxloss bench`` then prints and saves what it has) and, 20 seconds later, SIGKILL. Each step
has a limit of its own (1 to 3.5 minutes), and ``--budget`` (480 s by default) caps the whole: a step gets the
smaller of its limit and what is left, so the steps come in the order of what they are worth. On an H200 the
whole takes about 5 to 8 minutes. All steps run with ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` (JAX and torch
share the GPU) and one XLA compilation cache, which ``verify --full`` shares with ``verify``.

The GPU machine has jax with CUDA, optax, torch, triton and mpmath, and fetches nothing. Liger-Kernel and Cut
Cross-Entropy travel as wheels (pure Python, on Triton): from the project's root, on a machine that reaches
the package registry, once::

    mkdir -p .gpu && echo /.gpu/ >> "$(git rev-parse --git-path info/exclude)"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \\
        --platform manylinux2014_x86_64 -d .gpu liger-kernel==0.8.5 cut-cross-entropy==25.1.1

then, on the GPU machine, from the project's root, carrying ``.gpu``, with a limit of about 540 s::

    python3 -m jaxloss.tools.device_check

The wheels found in ``.gpu`` (``--wheels`` names another folder) are unpacked into a temporary folder on the
steps' ``PYTHONPATH``; without them, the Liger and CCE rows say "not importable" and the rest runs.

Anywhere, ``--quick`` runs the same steps at small sizes, one cost, in about a minute on a 2-core CPU (a smoke
test); ``--dry-run`` prints the steps' commands and limits and runs nothing; ``--only NAME,...`` runs some.
The exit status is 0 when every step exited 0 (``jaxloss verify`` exits 1 on any failed row).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

GRACE_S = 20.0
"""Seconds between a step's SIGINT and its SIGKILL."""
BUDGET_S = 480.0
"""The whole run's default limit, in seconds."""
QUICK_COST = "softmax_cross_entropy_with_integer_labels"


@dataclass(frozen=True)
class Step:
    """One step: a Python module run with arguments, its time limit, and what of its output to echo.

    ``echo`` is ``"all"`` (its whole output), ``"verdict"`` (the lines with ``passed`` or ``FAIL``) or
    ``"none"``. ``json`` says whether the step takes ``--json OUT/NAME.json``.
    """

    name: str
    args: tuple[str, ...]
    limit_s: float
    echo: str = "none"
    json: bool = True


def steps(quick: bool = False) -> list[Step]:
    """The steps of a run: at a GPU's sizes, or with ``quick`` small ones, one cost, for a CPU's smoke test.

    Example:
        >>> [step.name for step in steps()]
        ['describe', 'verify', 'lm-head', 'per-example', 'verify-full', 'bench']
    """
    describe = Step("describe", ("jaxloss.tools.device_check", "--describe"), 60, "all", json=False)
    if quick:
        return [
            describe,
            Step("verify", ("jaxloss", "verify", "--cost", QUICK_COST), 120, "verdict"),
            Step(
                "lm-head",
                ("jaxloss", "bench", "--lm-head", "--lm-head-size", "256,64,2048", "--repeats", "3"),
                120,
                "all",
            ),
            Step("per-example", ("jaxloss", "bench", "--per-example", "--quick", "--repeats", "2"), 120, "all", False),
            Step(
                "verify-full",
                ("jaxloss", "verify", "--full", "--cost", QUICK_COST, "--dtype", "bfloat16"),
                120,
                "verdict",
            ),
            Step("bench", ("jaxloss", "bench", "--quick", "--cost", QUICK_COST, "--repeats", "3"), 120),
        ]
    return [
        describe,
        Step("verify", ("jaxloss", "verify"), 150, "verdict"),
        Step("lm-head", ("jaxloss", "bench", "--lm-head"), 210, "all"),
        Step("per-example", ("jaxloss", "bench", "--per-example"), 90, "all", json=False),
        Step("verify-full", ("jaxloss", "verify", "--full"), 180, "verdict"),
        Step("bench", ("jaxloss", "bench"), 180),
    ]


def command(step: Step, out: Path) -> list[str]:
    """The step's command line, its JSON under ``out``."""
    json_args = ["--json", str(out / f"{step.name}.json")] if step.json else []
    return [sys.executable, "-m", *step.args, *json_args]


@dataclass
class Outcome:
    """What a step did: ``status`` is ``"ok"``, ``"exit N"``, ``"timed out"`` or ``"skipped"``."""

    name: str
    command: str
    status: str
    seconds: float
    limit_s: float
    files: list[str] = field(default_factory=list)


def _stop(process: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGINT to the step's process group, then SIGKILL after ``grace_s`` if it still runs."""
    for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def run_step(
    name: str, argv: Sequence[str], out: Path, limit_s: float, env: dict[str, str], grace_s: float = GRACE_S
) -> Outcome:
    """Runs ``argv`` with a time limit, its stdout to ``out/NAME.txt`` and its stderr to ``out/NAME.log``.

    The command runs in a session of its own, so that its limit stops its children too (``torch.compile``'s
    compiler workers): SIGINT first, then SIGKILL ``grace_s`` later.

    Args:
        name: the step's name, and its files'.
        argv: the command.
        out: the output folder.
        limit_s: seconds before SIGINT.
        env: the command's environment.
        grace_s: seconds between SIGINT and SIGKILL.

    Returns:
        The step's outcome.
    """
    started = time.monotonic()
    text, log = out / f"{name}.txt", out / f"{name}.log"
    with open(text, "wb") as stdout, open(log, "wb") as stderr:
        process = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env, start_new_session=True)
        try:
            code = process.wait(timeout=limit_s)
            status = "ok" if code == 0 else f"exit {code}"
        except subprocess.TimeoutExpired:
            _stop(process, grace_s)
            status = "timed out"
        except KeyboardInterrupt:  # this command's own Ctrl-C: the step, in a session of its own, stops too
            _stop(process, grace_s)
            raise
        with contextlib.suppress(ProcessLookupError, PermissionError):  # whatever of its session outlived it
            os.killpg(process.pid, signal.SIGKILL)
    files = sorted(str(p) for p in out.glob(f"{name}.*"))
    return Outcome(name, shlex.join(argv), status, time.monotonic() - started, limit_s, files)


def unpack_wheels(folder: Path) -> tuple[Path | None, list[str]]:
    """Unpacks the pure-Python wheels in ``folder`` into a new temporary folder, for ``PYTHONPATH``.

    Returns:
        The folder (``None`` without wheels) and the wheels' file names.
    """
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if not wheels:
        return None, []
    site = Path(tempfile.mkdtemp(prefix="jaxloss-wheels-"))
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    return site, [wheel.name for wheel in wheels]


def environment(site: Path | None, cache: Path) -> dict[str, str]:
    """The steps' environment: this one, with jaxloss and the unpacked wheels first on ``PYTHONPATH``, JAX's
    GPU memory taken as needed rather than all at once, and one compilation cache for every step."""
    root = str(Path(__file__).resolve().parents[2])  # the folder that holds the jaxloss package
    paths = [root, *([str(site)] if site else []), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), PYTHONUNBUFFERED="1")
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if "JAX_COMPILATION_CACHE_DIR" not in env:
        env.update(
            JAX_COMPILATION_CACHE_DIR=str(cache),
            JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
            JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
        )
    return env


def _echo(step: Step, outcome: Outcome, out: Path) -> None:
    print(f"== {step.name}: {outcome.status} in {outcome.seconds:.0f} s (limit {outcome.limit_s:.0f} s)", flush=True)
    if step.echo == "none" or outcome.status == "skipped":
        return
    text = (out / f"{step.name}.txt").read_text(errors="replace")
    lines = text.splitlines()
    if step.echo == "verdict":
        lines = [line for line in lines if " passed" in line or "FAIL" in line][-20:]
    print("\n".join(lines), flush=True)


def describe() -> int:
    """``--describe``: the GPU, the versions of the packages in play, and the devices JAX and torch see."""
    import importlib.metadata
    import platform

    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
        try:
            done = subprocess.run(query, capture_output=True, text=True, timeout=30, check=False)
            print(f"nvidia-smi: {done.stdout.strip() or done.stderr.strip()}")
        except subprocess.TimeoutExpired:
            print("nvidia-smi: no answer in 30 s")
    print(f"python {platform.python_version()} ({sys.executable})")
    packages = ["jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "optax", "mpmath", "numpy", "torch"]
    packages += ["triton", "liger-kernel", "cut-cross-entropy"]
    for name in packages:
        try:
            print(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            print(f"{name}: not installed")
    import jax

    print(f"jax devices: {jax.devices()}")
    try:
        import torch

        cuda = torch.cuda.is_available()
        print(f"torch cuda: {torch.cuda.get_device_name() if cuda else 'not available'}")
    except Exception as error:  # absent or broken: said, not fatal
        print(f"torch: not importable ({type(error).__name__}: {error})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m jaxloss.tools.device_check``."""
    parser = argparse.ArgumentParser(prog="python -m jaxloss.tools.device_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and one cost: a smoke test, on a CPU too")
    parser.add_argument("--dry-run", action="store_true", help="print the steps' commands and limits; run nothing")
    parser.add_argument("--out", metavar="DIR", help="the output folder (default: $OUT, else a temporary folder)")
    parser.add_argument(
        "--only", metavar="NAME,...", help="only these steps (" + ", ".join(s.name for s in steps()) + ")"
    )
    parser.add_argument("--wheels", metavar="DIR", default=".gpu", help="wheels to unpack for the steps (.gpu)")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help=f"seconds for the whole run ({BUDGET_S:.0f})")
    parser.add_argument("--describe", action="store_true", help=argparse.SUPPRESS)  # the describe step itself
    args = parser.parse_args(argv)
    if args.describe:
        return describe()
    plan = steps(args.quick)
    if args.only:
        names = args.only.split(",")
        unknown = sorted(set(names) - {s.name for s in plan})
        if unknown:
            parser.error(f"unknown steps {unknown}; the steps are {[s.name for s in plan]}")
        plan = [s for s in plan if s.name in names]
    chosen = args.out or os.environ.get("OUT")
    if args.dry_run:
        out = Path(chosen or "TEMPORARY")
        print(f"device check: {len(plan)} steps, results under {out}, budget {args.budget:.0f} s")
        for step in plan:
            print(f"{step.name} (limit {step.limit_s:.0f} s): {shlex.join(command(step, out))}")
        return 0
    out = Path(chosen or tempfile.mkdtemp(prefix="jaxloss-device-check-"))
    out.mkdir(parents=True, exist_ok=True)
    site, wheels = unpack_wheels(Path(args.wheels))
    print(f"device check: results under {out}; wheels: {', '.join(wheels) or 'none in ' + args.wheels}", flush=True)
    cache = Path(tempfile.mkdtemp(prefix="jaxloss-xla-cache-"))
    env = environment(site, cache)
    started = time.monotonic()
    outcomes: list[Outcome] = []
    try:
        for step in plan:
            left = args.budget - (time.monotonic() - started) - GRACE_S
            argv_ = command(step, out)
            if left < 10:
                outcome = Outcome(step.name, shlex.join(argv_), "skipped", 0.0, 0.0)
            else:
                outcome = run_step(step.name, argv_, out, min(step.limit_s, left), env)
            outcomes.append(outcome)
            _echo(step, outcome, out)
            summary = {"quick": args.quick, "wheels": wheels, "steps": [asdict(o) for o in outcomes]}
            (out / "summary.json").write_text(json.dumps(summary, indent=1))
    finally:  # the temporary folders this run made; the results stay
        for folder in (cache, site):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
    ok = sum(o.status == "ok" for o in outcomes)
    print(f"device check: {ok} of {len(outcomes)} steps ok in {time.monotonic() - started:.0f} s; results in {out}")
    return 0 if ok == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
