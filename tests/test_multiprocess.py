"""The multi-host path of ``jaxloss.sharded.linear_cross_entropy``, on one machine.

Two Python processes (``_multiprocess_worker.py``), each with two CPU devices, join through
``jax.distributed.initialize`` (a coordinator on localhost, CPU collectives over gloo) and build
the 2×2 mesh ``("batch", "vocab")`` whose rows are the processes: the batch is split across the
processes and the vocabulary within each, as the README advises for several hosts. They run the
README's data- and tensor-parallel training step on global arrays. The test checks that the
mesh really spans both processes and that the mean loss, the per-example losses and the
gradients of the hidden states and of the weight equal those of the same step on one device with
the single-device ``jaxloss.linear_cross_entropy``, computed both in the worker and here, in
float64 to 1e-12: so the ``pmax``/``psum`` over the vocabulary inside a process and the
gradients' sums over the batch across the processes are right, not only with one process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

WORKER = Path(__file__).with_name("_multiprocess_worker.py")
ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 180.0  # seconds for both processes together
GRACE = 10.0  # seconds a process may outlive its failed partner before it is killed
RTOL, ATOL = 1e-12, 1e-14
RESULTS = ("loss", "losses", "d_hidden", "d_weight")

OPTIONS = {
    "no_options": {},
    # ignore_index 3 is a label of one row in each process's half of the batch (the worker's data).
    "options": {"ignore_index": 3, "label_smoothing": 0.1, "z_loss": 1e-3, "soft_cap": 30.0, "weights": True},
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, for the coordinator."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment() -> dict[str, str]:
    """This process's environment without the settings that could steer JAX or a cluster's auto-detection."""
    prefixes = ("JAX_", "XLA_", "TPU_", "SLURM_", "OMPI_", "PMI_", "MPI_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def run_workers(options: dict[str, Any], directory: Path) -> list[Path]:
    """Starts both workers, waits for them and returns their output files; fails with both logs otherwise.

    A worker that outlives a failed partner by ``GRACE`` seconds, or either past ``TIMEOUT``, is
    killed: a process left alone would wait for the other's collectives.
    """
    port = free_port()
    outputs = [directory / f"process{i}.npz" for i in range(2)]
    logs = [directory / f"process{i}.log" for i in range(2)]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(2):
            command = [sys.executable, "-u", str(WORKER), str(port), str(i), json.dumps(options), str(outputs[i])]
            with logs[i].open("wb") as log:
                processes.append(
                    subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment(), cwd=ROOT)
                )
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            codes = [p.poll() for p in processes]  # every process, every time: poll() updates returncode
            if None not in codes:
                break
            if any(code not in (None, 0) for code in codes):
                deadline = min(deadline, time.monotonic() + GRACE)
            time.sleep(0.05)
    finally:
        killed = []
        for i, p in enumerate(processes):
            if p.poll() is None:
                p.kill()
                killed.append(i)
            p.wait()
    codes = [p.returncode for p in processes]
    if codes != [0, 0]:
        notes = [", killed by the test" if i in killed else "" for i in range(2)]
        report = "\n".join(f"--- process {i} (exit code {codes[i]}{notes[i]}) ---\n{tail(logs[i])}" for i in range(2))
        pytest.fail(f"the workers failed (exit codes {codes}; negative: ended by a signal):\n{report}")
    return outputs


def tail(log: Path, size: int = 6000) -> str:
    """The end of a worker's combined stdout and stderr."""
    text = log.read_text(errors="replace")
    return text if len(text) <= size else "…" + text[-size:]


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def single_device(data: dict[str, np.ndarray], options: dict[str, Any]) -> dict[str, np.ndarray]:
    """The training step on this process's first device with the single-device cost (float64 on)."""
    options = dict(options)
    device = jax.devices()[0]
    h, w, y, cw = (
        jax.device_put(jnp.asarray(data[f"input_{k}"]), device) for k in ("hidden", "weight", "labels", "weights")
    )
    if options.pop("weights", False):
        options["weights"] = cw

    def cost(h: jax.Array, w: jax.Array, y: jax.Array) -> jax.Array:
        return jaxloss.linear_cross_entropy(h, w, y, **options)

    loss, (d_hidden, d_weight) = jax.jit(jax.value_and_grad(lambda *a: cost(*a).mean(), (0, 1)))(h, w, y)
    results = {"loss": loss, "losses": jax.jit(cost)(h, w, y), "d_hidden": d_hidden, "d_weight": d_weight}
    return {k: np.asarray(v) for k, v in results.items()}


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_two_processes_match_one_device(options: dict[str, Any], tmp_path: Path):
    """Data- and tensor-parallel training step over two processes × two devices equals one device's.

    The loss and both gradients come back from the 2×2 mesh (batch across the processes,
    vocabulary within each) equal, to 1e-12 in float64, to the same step with the single-device
    cost, computed in process 0 and here; both processes see the same results.
    """
    first, second = (load(path) for path in run_workers(options, tmp_path))

    assert int(first["process_count"]) == 2
    assert int(first["device_count"]) == 4
    assert int(first["local_device_count"]) == 2
    np.testing.assert_array_equal(first["mesh_processes"], [[0, 0], [1, 1]])  # a mesh row per process

    here = single_device(first, options)
    for name in RESULTS:
        assert first[name].dtype == np.float64, name
        np.testing.assert_allclose(first[name], first[f"ref_{name}"], rtol=RTOL, atol=ATOL, err_msg=name)
        np.testing.assert_allclose(first[name], here[name], rtol=RTOL, atol=ATOL, err_msg=name)
        np.testing.assert_array_equal(second[name], first[name], err_msg=name)
    assert np.any(first["d_hidden"] != 0) and np.any(first["d_weight"] != 0)
