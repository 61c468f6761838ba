"""The accelerators' compiled programs, on any machine: XLA's programs for an NVIDIA H100 or H200 or a Google TPU,
compiled on a host without one ("deviceless" ahead-of-time compilation).

XLA-GPU comes from the ``jax-cuda13-plugin`` and ``jax-cuda13-pjrt`` wheels and XLA-TPU from ``libtpu``, loaded as
compile-only plugins: no device, driver, CUDA runtime or cuDNN is needed, and the plugins' versions must equal
jax's. A program compiled this way gives what the card's compiler would give: the optimized HLO (its fusions,
its loops and their trip counts) and the memory analysis (the temporaries). It gives no timings, and no GEMM
autotuning: matrix products get the default kernels and workspaces. Checked against a real H200 (the project's
GPU session, jax 0.11.2 there and 0.10.2 here), the temporaries of ten isolated cost programs matched to the MB;
programs with large matrix products differed by 3 to 25%. TPU temporaries count the high-bandwidth memory only:
the small intermediates XLA-TPU places in VMEM (``S(1)`` in the layouts) are not in them; not checked against a
real TPU.

jax must start its own backends on the CPU only (``JAX_PLATFORMS=cpu``): the CUDA plugin validates the CUDA
libraries, and fails without them, when jax starts with no platform named. :func:`prepare` sets this when jax has
not started yet; the ``jaxloss bench --compile-for`` command and this module's command line call it first.

Command line: ``python -m jaxloss.tools.accelerators --pins`` prints the figures of
``tests/test_accelerators.py``'s ``PINS`` dictionary, measured now, in its format;
``--against-optax`` prints the isolated costs' temporaries beside optax's at the sizes that
``tests/test_accelerators.py`` compares them (:data:`AGAINST_OPTAX`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from jaxloss.tools import bench

# --- the targets ---------------------------------------------------------------------------------

_HOPPER = """
  threads_per_block_limit: 1024
  threads_per_warp: 32
  shared_memory_per_block: 49152
  shared_memory_per_core: 233472
  threads_per_core_limit: 2048
  core_count: 132
  fpus_per_core: 128
  block_dim_limit_x: 2147483647
  block_dim_limit_y: 65535
  block_dim_limit_z: 65535
  l2_cache_size: 52428800
  clock_rate_ghz: 1.98
  shared_memory_per_block_optin: 232448
  cuda_compute_capability { major: 9 minor: 0 }
  registers_per_core_limit: 65536
  registers_per_block_limit: 65536
"""
_RUNTIME = """
runtime_version { major: 13 minor: 0 patch: 0 }
platform_name: "CUDA"
dnn_version_info { major: 9 minor: 10 }
device_description_str: "%s"
"""

GPUS = {
    "h100": "gpu_device_info {"
    + _HOPPER
    + "  memory_bandwidth: 3352320000000\n  device_memory_size: 84929347584\n}"
    + _RUNTIME % "NVIDIA H100 80GB HBM3",
    "h200": "gpu_device_info {"
    + _HOPPER
    + "  memory_bandwidth: 4916736000000\n  device_memory_size: 150754820096\n}"
    + _RUNTIME % "NVIDIA H200",
}
"""Each GPU target's description for XLA-GPU: a ``GpuTargetConfigProto`` in text form (the schema of XLA's
``gpu_specs/*.txtpb``), with the CUDA and cuDNN versions the compiler may assume."""

TPUS: dict[str, tuple[str, str | None]] = {
    "v4": ("v4:1x1x1", "megacore"),
    "v5e": ("v5e:1x1", None),
    "v5p": ("v5p:1x1x1", None),
    "v6e": ("v6e:1x1", None),
    "v7x": ("tpu7x:1x1x1", None),  # two devices (TensorCores) per chip: the programs are compiled for one
}
"""Each TPU target's topology name for libtpu and chip configuration (a v4 chip's two cores as one device)."""

TARGETS = (*GPUS, *TPUS)
"""The targets, as the ``--compile-for`` option names them."""

_GPU_WHEELS = ("jax-cuda13-plugin", "jax-cuda13-pjrt")
# libtpu, loaded only to compile: no TPU host's metadata to look for, and several processes at once (pytest's
# workers; by default the first to load libtpu locks /tmp/libtpu_lockfile and the others fail).
_TPU_ENVIRONMENT = {
    "TPU_SKIP_MDS_QUERY": "1",
    "TPU_WORKER_HOSTNAMES": "localhost",
    "TPU_WORKER_ID": "0",
    "ALLOW_MULTIPLE_LIBTPU_LOAD": "1",
}


_CONFIG: Any = jax.config  # its options are attributes that the type checker does not see


class MissingPluginError(RuntimeError):
    """The compiler of a target is not installed, or not at jax's version."""


def install_command(target: str) -> str:
    """The pip command that installs the compiler of ``target`` at the installed jax's version.

    Args:
        target: an entry of :data:`TARGETS`.

    Returns:
        The command, for example ``pip install "jax-cuda13-plugin==0.10.2" "jax-cuda13-pjrt==0.10.2"`` for a GPU
        (the plugins without the CUDA libraries, which compiling does not need) and
        ``pip install "jax[tpu]==0.10.2"`` for a TPU.
    """
    if target in GPUS:
        return "pip install " + " ".join(f'"{wheel}=={jax.__version__}"' for wheel in _GPU_WHEELS)
    return f'pip install "jax[tpu]=={jax.__version__}"'


def missing(target: str) -> str | None:
    """Why the compiler of ``target`` cannot be used here, or None when it can.

    Args:
        target: an entry of :data:`TARGETS`.

    Returns:
        None, or a sentence naming the missing wheels (or those at another version than jax's) and the pip
        command that installs them.

    Raises:
        ValueError: ``target`` is not an entry of :data:`TARGETS`.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; the targets are {', '.join(TARGETS)}")
    if target in GPUS:
        modules = {"jax-cuda13-plugin": "jax_cuda13_plugin", "jax-cuda13-pjrt": "jax_plugins.xla_cuda13"}
        absent = [wheel for wheel, module in modules.items() if not _importable(module)]
        wheels = "the wheels " + " and ".join(_GPU_WHEELS)
        if absent:
            return f"compiling for {target} needs {wheels} (absent: {', '.join(absent)}); {install_command(target)}"
        versions = {wheel: _version(wheel) for wheel in _GPU_WHEELS}
        wrong = {w: v for w, v in versions.items() if v is not None and v != jax.__version__}
        if wrong:
            found = ", ".join(f"{w} {v}" for w, v in wrong.items())
            return f"compiling for {target} needs {wheels} at jax's version {jax.__version__} (found {found}); " + (
                install_command(target)
            )
        return None
    if not _importable("libtpu"):
        return f"compiling for {target} needs the wheel libtpu (absent); {install_command(target)}"
    return None


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is absent
        return False


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def prepare() -> None:
    """Keeps jax's own backends on the CPU, so that the plugins register without a device.

    It sets ``jax_platforms`` to ``cpu`` when no platform was named (``JAX_PLATFORMS`` or ``jax.config``) and jax
    has not started its backends yet, and the variables (unless set) that keep libtpu from looking for a TPU host
    and let several processes load it. Call it before any jax computation; a later call changes nothing, and a
    GPU target then fails with the reason.
    """
    for name, value in _TPU_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    from jax._src import xla_bridge  # no public way to ask whether the backends have started

    if not _CONFIG.jax_platforms and not xla_bridge.backends_are_initialized():
        jax.config.update("jax_platforms", "cpu")


def devices(target: str, count: int = 1) -> list[Any]:
    """Compile-only devices of ``target``, for the shardings of a program compiled for it.

    Args:
        target: an entry of :data:`TARGETS`.
        count: how many devices (GPUs, or the cores of one TPU chip: two on a v7x, one otherwise).

    Returns:
        ``count`` abstract devices, whose ``device_kind`` is the card's (``"NVIDIA H200"``, ``"TPU v5 lite"``).

    Raises:
        MissingPluginError: the compiler of ``target`` is not installed at jax's version, or jax started with a
            GPU target's plugin failing (no platform named, no CUDA libraries): the message says what to do.
    """
    reason = missing(target)
    if reason:
        raise MissingPluginError(reason)
    prepare()
    from jax.experimental import topologies

    if target in GPUS:
        try:
            topology = topologies.get_topology_desc(
                "deviceless", "cuda", target_config=GPUS[target], topology=f"1x1x{count}"
            )
        except (RuntimeError, NotImplementedError) as error:
            raise MissingPluginError(
                f"jax has no CUDA plugin registered for {target} ({error}): most likely jax started its backends "
                "with no platform named, and the plugin failed for want of the CUDA libraries, before "
                "JAX_PLATFORMS=cpu was set: set it in the environment, or call "
                "jaxloss.tools.accelerators.prepare() before any jax computation"
            ) from error
        return list(topology.devices)
    name, chip = TPUS[target]
    options: dict[str, Any] = {"num_slices": 1, "wrap": (False, False, False), "chips_per_host_bounds": (1, 1, 1)}
    if chip:
        options["chip_config_name"] = chip
    return list(topologies.get_topology_desc(topology_name=name, platform="tpu", **options).devices)[:count]


def compile_for(fn: Callable[..., Any], *args: Any, target: str = "h200", **jit_options: Any) -> Any:
    """``jax.jit(fn)`` compiled for one device of ``target``, on this machine.

    Args:
        fn: the function to compile.
        *args: its arguments: ``jax.ShapeDtypeStruct`` or arrays (only their shapes and dtypes are used).
        target: an entry of :data:`TARGETS`.
        **jit_options: passed to ``jax.jit`` (``static_argnums``, ``donate_argnums``, ...).

    Returns:
        The compiled program (``jax.stages.Compiled``): its ``as_text()`` is the optimized HLO and its
        ``memory_analysis()`` the sizes of its buffers. It cannot run here.

    Raises:
        MissingPluginError: as :func:`devices`.
    """
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(devices(target, 1), ("d",))
    replicated = NamedSharding(mesh, PartitionSpec())
    placed = [jax.ShapeDtypeStruct(jnp.shape(a), a.dtype, sharding=replicated) for a in args]
    lowered = jax.jit(fn, **jit_options).lower(*placed)
    with _without_persistent_cache():
        return lowered.compile()


@contextlib.contextmanager
def _without_persistent_cache() -> Iterator[None]:
    """jax's persistent compilation cache off for a while, when it is on: a compile-only program written there
    cannot be read back (loading it needs a device's client; jax warns and compiles again)."""
    from jax.experimental.compilation_cache import compilation_cache

    if not _CONFIG.jax_enable_compilation_cache:
        yield
        return
    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()  # it decides once per process whether it is used
    try:
        yield
    finally:
        jax.config.update("jax_enable_compilation_cache", True)
        compilation_cache.reset_cache()


# --- what a compiled program holds -----------------------------------------------------------------


@dataclass(frozen=True)
class Footprint:
    """What a compiled program holds besides its arguments and results.

    Attributes:
        temp_bytes: XLA's temporary buffers, in bytes (``memory_analysis().temp_size_in_bytes``).
        trip_counts: each while loop's number of iterations, in the order of the optimized HLO's text (inner
            loops before the loops that call them); None where it could not be read.
    """

    temp_bytes: int
    trip_counts: tuple[int | None, ...]

    def arrays(self, nbytes: int) -> float:
        """The temporaries in units of an array of ``nbytes`` bytes (a logits-sized array: rows x classes x
        the bytes of the dtype)."""
        return self.temp_bytes / nbytes


def footprint(compiled: Any) -> Footprint:
    """The temporaries and the loops' trip counts of a compiled program.

    Args:
        compiled: a ``jax.stages.Compiled``, from :func:`compile_for` or ``jax.jit(f).lower(...).compile()``.

    Returns:
        Its :class:`Footprint`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> def f(x):
        ...     return jax.lax.fori_loop(0, 5, lambda i, y: jnp.sin(y) * y, x)
        >>> program = jax.jit(f).lower(jnp.ones(1000)).compile()
        >>> footprint(program).trip_counts
        (5,)
    """
    analysis = compiled.memory_analysis()
    temp = int(analysis.temp_size_in_bytes) if analysis is not None else 0
    return Footprint(temp, tuple(trip_counts(str(compiled.as_text()))))


@dataclass(frozen=True)
class _Instruction:
    name: str
    opcode: str
    operands: tuple[str, ...]
    text: str  # everything after the opcode's operands: the attributes


_HEADER = re.compile(r"^(?:ENTRY )?%(\S+) .*\{\s*$")
_LINE = re.compile(r"^\s*(ROOT )?%(\S+) = (.*)$")
_OPCODE = re.compile(r"(?:^|[\s}\]])([a-z][a-z0-9\-]*)\(")


def _instruction(name: str, rest: str) -> _Instruction | None:
    match = _OPCODE.search(rest)
    if not match:
        return None
    start, depth, end = match.end() - 1, 0, len(rest)
    for i in range(start, len(rest)):
        depth += {"(": 1, ")": -1}.get(rest[i], 0)
        if depth == 0:
            end = i
            break
    inside = rest[start + 1 : end]
    operands = tuple(re.findall(r"%([\w.\-]+)", inside)) or (inside.strip(),)
    return _Instruction(name, match.group(1), operands, rest[end + 1 :])


def _computations(hlo_text: str) -> tuple[dict[str, _Instruction], dict[str, str]]:
    """Every instruction by name (names are unique in an HLO module) and each computation's root's name."""
    instructions: dict[str, _Instruction] = {}
    roots: dict[str, str] = {}
    computation = ""
    for line in hlo_text.splitlines():
        header = _HEADER.match(line)
        if header:
            computation = header.group(1)
            continue
        match = _LINE.match(line)
        if not match:
            continue
        parsed = _instruction(match.group(2), match.group(3))
        if parsed is None:
            continue
        instructions[parsed.name] = parsed
        if match.group(1):
            roots[computation] = parsed.name
    return instructions, roots


def _constant(instructions: dict[str, _Instruction], name: str) -> int | None:
    """The integer a scalar constant holds, through copies and conversions."""
    seen = 0
    while name in instructions and seen < 8:
        inst = instructions[name]
        if inst.opcode == "constant":
            try:
                return int(inst.operands[0])
            except ValueError:
                return None
        if inst.opcode not in ("copy", "convert", "bitcast") or len(inst.operands) != 1:
            return None
        name, seen = inst.operands[0], seen + 1
    return None


def _tuple_index(instructions: dict[str, _Instruction], name: str) -> int | None:
    """k when ``name`` is ``get-tuple-element(..), index=k``."""
    inst = instructions.get(name)
    if inst is None or inst.opcode != "get-tuple-element":
        return None
    match = re.search(r"index=(\d+)", inst.text)
    return int(match.group(1)) if match else None


def _trip_count(loop: _Instruction, instructions: dict[str, _Instruction], roots: dict[str, str]) -> int | None:
    known = re.search(r'"known_trip_count":\{"n":"(\d+)"', loop.text)
    if known:  # XLA-GPU and XLA-CPU write it in the loop's backend configuration
        return int(known.group(1))
    # Otherwise (XLA-TPU) from the loop itself: condition `i < n` (or <=, >, >=, !=), i starting at a constant s
    # and stepped by a constant d in the body.
    condition = re.search(r"condition=%([\w.\-]+)", loop.text)
    body = re.search(r"body=%([\w.\-]+)", loop.text)
    if not condition or not body or condition.group(1) not in roots or body.group(1) not in roots:
        return None
    compare = instructions[roots[condition.group(1)]]
    direction = re.search(r"direction=(\w+)", compare.text)
    if compare.opcode != "compare" or not direction or len(compare.operands) != 2:
        return None
    a, b = compare.operands
    k, bound, op = _tuple_index(instructions, a), _constant(instructions, b), direction.group(1)
    if k is None or bound is None:
        k, bound = _tuple_index(instructions, b), _constant(instructions, a)
        op = {"LT": "GT", "GT": "LT", "LE": "GE", "GE": "LE"}.get(op, op)
    init = instructions.get(loop.operands[0])
    update = instructions[roots[body.group(1)]]
    if k is None or bound is None or init is None or init.opcode != "tuple" or update.opcode != "tuple":
        return None
    start = _constant(instructions, init.operands[k]) if k < len(init.operands) else None
    step_inst = instructions.get(update.operands[k]) if k < len(update.operands) else None
    if start is None or step_inst is None or step_inst.opcode not in ("add", "subtract"):
        return None
    x, y = step_inst.operands[:2]
    if _tuple_index(instructions, x) == k and _constant(instructions, y) is not None:
        step = _constant(instructions, y) or 0
    elif step_inst.opcode == "add" and _tuple_index(instructions, y) == k and _constant(instructions, x) is not None:
        step = _constant(instructions, x) or 0
    else:
        return None
    step = -step if step_inst.opcode == "subtract" else step
    return _iterations(op, start, bound, step)


def _iterations(op: str, start: int, bound: int, step: int) -> int | None:
    """How many i = start, start + step, ... satisfy ``i OP bound`` in a row; None when endless."""
    holds = {"LT": start < bound, "LE": start <= bound, "GT": start > bound, "GE": start >= bound, "NE": start != bound}
    if op not in holds:
        return None
    if not holds[op]:
        return 0
    if (op == "LT" and step > 0) or (op == "GT" and step < 0):
        return -((start - bound) // step)  # ceil((bound - start) / step)
    if (op == "LE" and step > 0) or (op == "GE" and step < 0):
        return (bound - start) // step + 1
    if op == "NE" and step != 0 and (bound - start) % step == 0 and (bound - start) // step > 0:
        return (bound - start) // step
    return None


def trip_counts(hlo_text: str) -> list[int | None]:
    """The number of iterations of each while loop of an optimized HLO module.

    XLA-GPU (and XLA-CPU) write a loop's count in its backend configuration (``"known_trip_count":{"n":"8"}``);
    XLA-TPU does not, and the count is read from the loop: a condition ``i < n`` (or ``<=``, ``>``, ``>=``,
    ``!=``) of a tuple element ``i`` that starts at a constant :math:`s` and that the body steps by a constant
    :math:`d`, for :math:`\\lceil (n - s) / d \\rceil` iterations.

    Args:
        hlo_text: the module's text (``compiled.as_text()``).

    Returns:
        One count per while loop, in the text's order; None for a loop whose count is not written that way.
    """
    instructions, roots = _computations(hlo_text)
    return [_trip_count(inst, instructions, roots) for inst in instructions.values() if inst.opcode == "while"]


# --- the bench's programs, compiled for a target ---------------------------------------------------


@dataclass(frozen=True)
class Program:
    """One cost's value_and_grad of the mean loss, for one implementation, as compiled for a target.

    Attributes:
        cost: the cost's name (``linear_cross_entropy (D=512)`` for the output layer).
        shape: (rows, classes): the logits' shape.
        dtype: the logits' (or the hidden states' and weight's) dtype.
        implementation: ``jaxloss`` or ``optax``; for the output layer ``jaxloss mean`` (``reduction="mean"``),
            ``jaxloss`` (``reduction="none"`` and the mean after) or ``optax`` (``hidden @ weight`` in float32,
            then optax's integer-label cost: the unfused head).
        footprint: its temporaries and loops.
        seconds: how long it took to compile.
    """

    cost: str
    shape: tuple[int, int]
    dtype: str
    implementation: str
    footprint: Footprint
    seconds: float

    @property
    def logits_bytes(self) -> int:
        """The bytes of one logits-sized array: rows x classes in the program's dtype."""
        return self.shape[0] * self.shape[1] * jnp.dtype(self.dtype).itemsize

    @property
    def arrays(self) -> float:
        """The temporaries, in logits-sized arrays."""
        return self.footprint.arrays(self.logits_bytes)


def _labels(case: bench.Case, shape: tuple[int, int], dtype: Any) -> jax.ShapeDtypeStruct:
    if case.labels == "integer":
        return jax.ShapeDtypeStruct(shape[:-1], jnp.int32)
    return jax.ShapeDtypeStruct(shape, dtype)


def compile_cost(
    target: str, case: bench.Case, shape: tuple[int, int], dtype: str, implementations: Sequence[str]
) -> list[Program]:
    """The bench's program for ``case``, value_and_grad of the mean loss, compiled for ``target``.

    Args:
        target: an entry of :data:`TARGETS`.
        case: a cost of ``jaxloss.tools.bench.CASES``.
        shape: the logits' shape.
        dtype: the logits' dtype, ``"float32"`` or ``"bfloat16"``.
        implementations: names from ``jaxloss.tools.bench.implementations`` (``jaxloss``, ``optax``, ...).

    Returns:
        One :class:`Program` per implementation.
    """
    impls = bench.implementations(case)
    logits = jax.ShapeDtypeStruct(shape, jnp.dtype(dtype))
    labels = _labels(case, shape, jnp.dtype(dtype))
    programs = []
    for name in implementations:
        fn = impls[name]

        def mean_loss(z: jax.Array, y: jax.Array, fn: Callable[..., jax.Array] = fn) -> jax.Array:
            return jnp.mean(fn(z, y))

        started = time.perf_counter()
        compiled = compile_for(jax.value_and_grad(mean_loss), logits, labels, target=target)
        seconds = time.perf_counter() - started
        programs.append(Program(case.cost, shape, dtype, name, footprint(compiled), seconds))
    return programs


LINEAR_IMPLEMENTATIONS = {"jaxloss mean": "jaxloss mean", "jaxloss": "jaxloss", "optax": "optax"}


def compile_linear(
    target: str, rows: int, dim: int, vocab: int, dtype: str, implementations: Sequence[str]
) -> list[Program]:
    """The output layer's value_and_grad of the mean loss, for the hidden states and the weight, compiled.

    The fused ``jaxloss.linear_cross_entropy`` (``jaxloss mean``: ``reduction="mean"``; ``jaxloss``: the
    per-token losses, then their mean) beside optax's unfused head (``optax``: the float32 logits
    :math:`H W`, then ``optax.losses.softmax_cross_entropy_with_integer_labels``).

    Args:
        target: an entry of :data:`TARGETS`.
        rows: tokens :math:`N`.
        dim: model width :math:`D`.
        vocab: vocabulary :math:`V`; a logits-sized array is :math:`N \\times V` of ``dtype``.
        dtype: the hidden states' and weight's dtype.
        implementations: keys of ``jaxloss.tools.bench``'s linear implementations.

    Returns:
        One :class:`Program` per implementation, whose cost is ``linear_cross_entropy (D=dim)`` and shape
        (rows, vocab).
    """
    impls = bench._linear_implementations()
    hidden = jax.ShapeDtypeStruct((rows, dim), jnp.dtype(dtype))
    weight = jax.ShapeDtypeStruct((dim, vocab), jnp.dtype(dtype))
    labels = jax.ShapeDtypeStruct((rows,), jnp.int32)
    programs = []
    for name in implementations:
        grad = jax.value_and_grad(impls[name], argnums=(0, 1))
        started = time.perf_counter()
        compiled = compile_for(grad, hidden, weight, labels, target=target)
        seconds = time.perf_counter() - started
        cost = f"linear_cross_entropy (D={dim})"
        programs.append(Program(cost, (rows, vocab), dtype, name, footprint(compiled), seconds))
    return programs


def _loops(counts: tuple[int | None, ...]) -> str:
    return ",".join("?" if n is None else str(n) for n in counts) or "-"


def _ratio(base: Program, program: Program) -> str:
    """optax's temporaries over the program's; under a hundredth of a logits-sized array counts as none."""
    small = program.logits_bytes / 100
    if program.footprint.temp_bytes < small:
        return "-" if base.footprint.temp_bytes < small else "inf"
    return f"{base.footprint.temp_bytes / program.footprint.temp_bytes:.2f}"


def format_programs(programs: Sequence[Program]) -> str:
    """A table of the programs' temporaries (MB and logits-sized arrays), loops, and optax's temporaries over
    each's (``inf`` where only optax's reach a hundredth of a logits-sized array, ``-`` where neither does)."""
    header = ("cost", "shape", "dtype", "impl", "temp MB", "arrays", "loops", "optax/impl")
    groups: dict[tuple[str, tuple[int, int], str], dict[str, Program]] = {}
    for p in programs:
        groups.setdefault((p.cost, p.shape, p.dtype), {})[p.implementation] = p
    lines = []
    for (cost, shape, dtype), group in groups.items():
        base = group.get("optax")
        for name, p in group.items():
            temp = p.footprint.temp_bytes
            lines.append(
                (
                    cost,
                    f"{shape[0]}x{shape[1]}",
                    dtype,
                    name,
                    f"{temp / 2**20:.1f}",
                    f"{p.arrays:.2f}",
                    _loops(p.footprint.trip_counts),
                    _ratio(base, p) if base else "",
                )
            )
    cells = [header, *lines]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells)


MIN_LOGITS = 2**20
"""The bench's sizes with fewer logits are not compiled for an accelerator: their temporaries are the fixed
buffers of small reductions, not arrays."""


def bench_programs(target: str, quick: bool = False, costs: Sequence[str] | None = None) -> list[Program]:
    """Every program of ``jaxloss bench`` compiled for ``target``: jaxloss's and optax's.

    The bench's sizes of at least :data:`MIN_LOGITS` logits, float32 and bfloat16, and its output layer; about
    70 programs, a minute for a GPU and five for a TPU on 2 cores.

    Args:
        target: an entry of :data:`TARGETS`.
        quick: the bench's quick sizes and float32 only (as ``jaxloss bench --quick``): 19 programs.
        costs: only these costs (``linear_cross_entropy`` for the output layer); all when None.

    Returns:
        The programs, jaxloss's and optax's of each cost, size and dtype together.
    """
    sizes = bench.QUICK_SIZES if quick else bench.FULL_SIZES
    dtypes = ("float32",) if quick else ("float32", "bfloat16")
    programs: list[Program] = []
    for case in bench.CASES:
        if costs and case.cost not in costs:
            continue
        kind = "elementwise" if case.labels == "binary" else "softmax"
        for shape in (s for s in sizes[kind] if s[0] * s[1] >= MIN_LOGITS):
            for dtype in dtypes:
                print(f"  {case.cost} {shape[0]}x{shape[1]} {dtype} ...", file=sys.stderr, flush=True)
                programs.extend(compile_cost(target, case, shape, dtype, ("jaxloss", "optax")))
    if not costs or "linear_cross_entropy" in costs:
        for rows, dim, vocab in bench.QUICK_LINEAR if quick else bench.FULL_LINEAR:
            for dtype in dtypes:
                print(f"  linear_cross_entropy {rows}x{dim}x{vocab} {dtype} ...", file=sys.stderr, flush=True)
                programs.extend(compile_linear(target, rows, dim, vocab, dtype, tuple(LINEAR_IMPLEMENTATIONS)))
    return programs


def bench_main(target: str, quick: bool = False, costs: Sequence[str] | None = None) -> int:
    """``jaxloss bench --compile-for TARGET``: the bench's programs compiled for ``target``, their temporaries
    and loops side by side with optax's. Returns the command's exit status (2 when the compiler is absent)."""
    prepare()
    reason = missing(target)
    if reason:
        print(f"jaxloss bench: {reason}", file=sys.stderr)
        return 2
    import jaxloss

    kind = devices(target)[0].device_kind
    started = time.perf_counter()
    print(
        f"jaxloss {jaxloss.__version__} bench compiled for {target} ({kind}) by jax {jax.__version__} on this "
        "machine, without the device: XLA's temporaries of value_and_grad of the mean (MB, and in logits-sized "
        "arrays: rows x classes of the dtype), the while loops' trip counts, and optax's temporaries over each's",
        flush=True,
    )
    programs = bench_programs(target, quick, costs)
    print(format_programs(programs))
    print(f"{len(programs)} programs compiled in {time.perf_counter() - started:.0f} s")
    return 0


# --- the figures pinned by tests/test_accelerators.py ---------------------------------------------

PIN_SHAPE = (2048, 8192)
"""The isolated costs' logits: a logits-sized array is 64 MiB in float32 and 32 MiB in bfloat16."""
PIN_LINEAR = (2048, 512, 8192)
"""The output layer's tokens, width and vocabulary: its logits-sized array is tokens x vocabulary."""
PINNED: dict[str, tuple[tuple[str, ...], bool]] = {
    "h200": (("float32", "bfloat16"), True),
    "v5e": (("bfloat16",), False),
}
"""Per target ``tests/test_accelerators.py`` pins, the dtypes of the isolated costs and whether the output layer.
The TPU's are fewer because XLA-TPU compiles about five times slower here (a jaxloss cost 1 to 9 s, the output
layer 8 to 15 s, on 2 cores): its float32 costs and output layer (none of which writes a logits-sized temporary
at these sizes, optax's focal loss excepted) would take the file over a minute."""


def pin_keys(target: str) -> list[str]:
    """The keys of ``target``'s pins: ``"cost dtype"`` for each cost of the bench, and
    ``"linear_cross_entropy REDUCTION dtype"`` for the output layer (``mean``, or ``none`` and the mean after).

    Args:
        target: an entry of :data:`TARGETS`; one that :data:`PINNED` does not name gets every key.

    Returns:
        The keys, in the order ``tests/test_accelerators.py`` lists them.
    """
    dtypes, linear = PINNED.get(target, (("float32", "bfloat16"), True))
    keys = [f"{case.cost} {dtype}" for case in bench.CASES for dtype in dtypes]
    if linear:
        keys += [f"linear_cross_entropy {r} {dtype}" for r in ("mean", "none") for dtype in dtypes]
    return keys


def measure_pin(target: str, key: str, implementation: str = "jaxloss") -> Program:
    """The program a pin's key names, compiled for ``target``.

    Args:
        target: an entry of :data:`TARGETS`.
        key: an entry of :func:`pin_keys`.
        implementation: ``jaxloss``, or ``optax`` for optax's figure beside it (the unfused head for the output
            layer).

    Returns:
        Its :class:`Program`; ``arrays`` is the pinned figure.
    """
    *words, dtype = key.split()
    if words[0] == "linear_cross_entropy":
        name = implementation if implementation == "optax" else {"mean": "jaxloss mean", "none": "jaxloss"}[words[1]]
        return compile_linear(target, *PIN_LINEAR, dtype, (name,))[0]
    case = next(c for c in bench.CASES if c.cost == words[0])
    return compile_cost(target, case, PIN_SHAPE, dtype, (implementation,))[0]


def format_pins(targets: Sequence[str]) -> str:
    """``PINS = {...}`` as measured now, with optax's figures as comments, for ``tests/test_accelerators.py``."""
    wheels = ", ".join(f"{w} {_version(w)}" for w in ("jax-cuda13-plugin", "libtpu") if _version(w))
    command = "python -m jaxloss.tools.accelerators --pins"
    lines = [f"# Measured by {command} (jax {jax.__version__}, {wheels}).", "PINS = {"]
    for target in targets:
        reason = missing(target)
        if reason:
            lines.append(f"    # {target}: not measured: {reason}")
            continue
        lines.append(f'    "{target}": {{')
        for key in pin_keys(target):
            print(f"  {target} {key} ...", file=sys.stderr, flush=True)
            ours, theirs = measure_pin(target, key), measure_pin(target, key, "optax")
            mb = ours.footprint.temp_bytes / 2**20
            other = f"optax {theirs.arrays:.2f} ({theirs.footprint.temp_bytes / 2**20:.1f} MB)"
            lines.append(f'        "{key}": {ours.arrays:.2f},  # {mb:.1f} MB; {other}')
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines)


# --- the isolated costs against optax's, at a language model's sizes (issue 24) -----------------

ROWS_CLASSES = (8192, 32768)
"""Every isolated cost's logits for the comparison with optax: a logits-sized array is 1 GiB in float32."""
VOCABULARY = (8192, 128256)
"""The integer-label cost's logits at a large vocabulary, for the comparison with optax."""
INTEGER_COST = "softmax_cross_entropy_with_integer_labels"

_BOTH = ("float32", "bfloat16")
AGAINST_OPTAX: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "h200": tuple((case.cost, _BOTH) for case in bench.CASES),
    "v5e": (("softmax_cross_entropy", _BOTH), (INTEGER_COST, _BOTH)),
}
"""Per target, the costs compared with optax and their dtypes (:func:`against_optax_cases`). On the TPU the
soft- and integer-label costs only, for time: XLA-TPU compiles poly-1 and the focal loss at 8192x32768 in 7 to
15 s each on 2 cores, the others in 1 to 3 s. Poly-1 in bfloat16 wrote two logits-sized arrays there before
issue 24's fix (optax's none; none at ``PINS``' 2048x8192), from the sharing that its H200 check also catches
(``_backend``, rule 8). A target not named here gets every cost in both dtypes."""

SLACK = 0.25
"""How many logits-sized arrays jaxloss's temporaries may exceed optax's by: a quarter of an array."""


def against_optax_cases(target: str) -> list[tuple[str, tuple[int, int], str]]:
    """The ``(cost, shape, dtype)`` of each program compared with optax's on ``target``.

    Args:
        target: an entry of :data:`TARGETS`.

    Returns:
        Each cost of :data:`AGAINST_OPTAX` at :data:`ROWS_CLASSES` in its dtypes, and the
        integer-label cost also at :data:`VOCABULARY`.
    """
    costs = AGAINST_OPTAX.get(target, AGAINST_OPTAX["h200"])
    cases = [(cost, ROWS_CLASSES, dtype) for cost, dtypes in costs for dtype in dtypes]
    cases += [(cost, VOCABULARY, dtype) for cost, dtypes in costs if cost == INTEGER_COST for dtype in dtypes]
    return cases


def against_optax(target: str, cost: str, shape: tuple[int, int], dtype: str) -> tuple[Program, Program | None]:
    """jaxloss's program for ``cost``, and optax's where jaxloss's temporaries exceed :data:`SLACK`.

    Args:
        target: an entry of :data:`TARGETS`.
        cost: a cost of ``jaxloss.tools.bench.CASES``.
        shape: the logits' shape.
        dtype: the logits' dtype.

    Returns:
        jaxloss's :class:`Program`, and optax's, or None where jaxloss's temporaries are within
        :data:`SLACK` of none (optax's cannot be fewer): a check then compiles one program.
    """
    case = next(c for c in bench.CASES if c.cost == cost)
    (ours,) = compile_cost(target, case, shape, dtype, ("jaxloss",))
    if ours.arrays <= SLACK:
        return ours, None
    (theirs,) = compile_cost(target, case, shape, dtype, ("optax",))
    return ours, theirs


def format_against_optax(targets: Sequence[str]) -> str:
    """A table of :func:`against_optax_cases`'s programs on ``targets``: jaxloss's temporaries and optax's
    (both compiled, each time), in logits-sized arrays, and whether jaxloss's are within :data:`SLACK`."""
    header = ("target", "cost", "shape", "dtype", "jaxloss", "optax", "within")
    lines: list[tuple[str, ...]] = []
    for target in targets:
        reason = missing(target)
        if reason:
            lines.append((target, f"not measured: {reason}", "", "", "", "", ""))
            continue
        for cost, shape, dtype in against_optax_cases(target):
            print(f"  {target} {cost} {shape[0]}x{shape[1]} {dtype} ...", file=sys.stderr, flush=True)
            case = next(c for c in bench.CASES if c.cost == cost)
            ours, theirs = compile_cost(target, case, shape, dtype, ("jaxloss", "optax"))
            within = "yes" if ours.arrays <= theirs.arrays + SLACK else "NO"
            size = f"{shape[0]}x{shape[1]}"
            lines.append((target, cost, size, dtype, f"{ours.arrays:.2f}", f"{theirs.arrays:.2f}", within))
    cells = [header, *lines]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jaxloss.tools.accelerators``: the pins, or the bench's programs for one target."""
    parser = argparse.ArgumentParser(prog="python -m jaxloss.tools.accelerators", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pins", action="store_true", help="print tests/test_accelerators.py's PINS, measured now")
    parser.add_argument("--against-optax", action="store_true", help="print the isolated costs beside optax's")
    parser.add_argument(
        "--targets", default=",".join(PINNED), help="the targets of --pins or --against-optax, comma-separated"
    )
    parser.add_argument("--compile-for", choices=TARGETS, help="as jaxloss bench --compile-for")
    parser.add_argument("--quick", action="store_true", help="with --compile-for: the bench's quick sizes")
    args = parser.parse_args(argv)
    prepare()
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if args.pins:
        print(format_pins(targets))
        return 0
    if args.against_optax:
        print(format_against_optax(targets))
        return 0
    if args.compile_for:
        return bench_main(args.compile_for, args.quick)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
