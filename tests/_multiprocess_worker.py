"""One process of the two-process test of ``jaxloss.sharded.linear_cross_entropy`` (``test_multiprocess.py``).

Run as ``python _multiprocess_worker.py PORT PROCESS_ID OPTIONS_JSON OUTPUT.npz``. The process
takes two CPU devices, joins the other process through ``jax.distributed.initialize`` (a
coordinator on ``localhost:PORT``, CPU collectives over gloo), builds the 2×2 mesh
``("batch", "vocab")`` with one row per process (the batch across the processes, the vocabulary
within each), and runs the README's data- and tensor-parallel training step on global arrays
made from the same deterministic data in both processes. It writes to ``OUTPUT.npz`` the inputs,
the step's results gathered to the host (the mean loss, the per-example losses, ``d_hidden``
and ``d_weight``) and a description of the mesh; process 0 also writes the same step computed
on its one local device with the single-device ``jaxloss.linear_cross_entropy``.

``OPTIONS_JSON`` holds the cost's keyword arguments; ``"weights": true`` stands for class
weights, built here, passed to the sharded cost as each device's shard (``P("vocab")``) and
to the single-device cost whole.

Importing this module does nothing (the suite collects ``tests/`` with ``--doctest-modules``).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

ROWS, WIDTH, VOCAB = 8, 4, 16  # N, D, V: 4 rows per process, 8 classes per device
IGNORED = 3  # the label id that the options case ignores; the data holds it


def make_data() -> dict[str, np.ndarray]:
    """The inputs, the same in every process: float64 hidden states and weight, int32 labels, class weights.

    >>> data = make_data()
    >>> data["hidden"].shape, data["weight"].shape, data["labels"].shape, data["weights"].shape
    ((8, 4), (4, 16), (8,), (16,))
    >>> int((data["labels"] == IGNORED).sum())
    2
    """
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(ROWS, WIDTH))
    weight = rng.normal(size=(WIDTH, VOCAB))
    # Labels on both vocabulary shards (classes 0-7 and 8-15), and one ignored row in each
    # process's half of the batch (rows 0-3 and 4-7).
    labels = np.array([15, IGNORED, 6, 13, 9, 8, IGNORED, 1], np.int32)
    weights = rng.uniform(0.5, 2.0, size=VOCAB)
    return {"hidden": hidden, "weight": weight, "labels": labels, "weights": weights}


def _gather(tree: Any) -> Any:
    """Numpy copies of arrays that span the processes (each process gets the whole array)."""
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def main(port: int, process_id: int, options_json: str, output: str) -> None:
    """Joins the other process, runs the sharded training step and writes its results to ``output``."""
    import jax

    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", 2)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_enable_x64", True)
    # The suite's strictness (tests/conftest.py), so that an implicit promotion fails here too.
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.distributed.initialize(
        coordinator_address=f"localhost:{port}",
        num_processes=2,
        process_id=process_id,
        initialization_timeout=60,
    )

    import jax.numpy as jnp
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    import jaxloss

    options = json.loads(options_json)
    class_weights = bool(options.pop("weights", False))

    # Mesh rows are processes: the batch axis crosses them, the vocabulary axis stays inside one.
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    grid = np.array(devices).reshape(2, 2)
    mesh = jax.sharding.Mesh(grid, ("batch", "vocab"))

    data = make_data()

    def global_array(name: str, spec: P) -> jax.Array:
        value = data[name]
        return jax.make_array_from_callback(value.shape, NamedSharding(mesh, spec), lambda index: value[index])

    specs = [P("batch", None), P(None, "vocab"), P("batch")]
    inputs = [global_array("hidden", specs[0]), global_array("weight", specs[1]), global_array("labels", specs[2])]
    if class_weights:
        specs.append(P("vocab"))
        inputs.append(global_array("weights", specs[3]))

    def local_cost(h: jax.Array, w: jax.Array, y: jax.Array, *shard: jax.Array) -> jax.Array:
        extra = {"weights": shard[0]} if shard else {}  # this device's (V/k,) shard of the class weights
        return jaxloss.sharded.linear_cross_entropy(h, w, y, axis_name="vocab", **options, **extra)

    cost = jax.shard_map(local_cost, mesh=mesh, in_specs=tuple(specs), out_specs=P("batch"))
    step = jax.jit(jax.value_and_grad(lambda *args: cost(*args).mean(), (0, 1)))
    loss, (d_hidden, d_weight) = step(*inputs)
    losses = jax.jit(cost)(*inputs)

    results = _gather({"loss": loss, "losses": losses, "d_hidden": d_hidden, "d_weight": d_weight})
    results["process_count"] = np.array(jax.process_count())
    results["device_count"] = np.array(jax.device_count())
    results["local_device_count"] = np.array(jax.local_device_count())
    results["mesh_processes"] = np.vectorize(lambda d: d.process_index)(grid)
    results.update({f"input_{name}": value for name, value in data.items()})

    if process_id == 0:
        # The same step on this process's one device, with the plain single-device cost.
        device = jax.local_devices()[0]
        h, w, y, cw = (jax.device_put(jnp.asarray(data[k]), device) for k in ("hidden", "weight", "labels", "weights"))
        extra = {"weights": cw} if class_weights else {}

        def single(h: jax.Array, w: jax.Array, y: jax.Array) -> jax.Array:
            return jaxloss.linear_cross_entropy(h, w, y, **options, **extra)

        ref_loss, (ref_d_hidden, ref_d_weight) = jax.jit(jax.value_and_grad(lambda *a: single(*a).mean(), (0, 1)))(
            h, w, y
        )
        results["ref_loss"] = np.asarray(ref_loss)
        results["ref_losses"] = np.asarray(jax.jit(single)(h, w, y))
        results["ref_d_hidden"] = np.asarray(ref_d_hidden)
        results["ref_d_weight"] = np.asarray(ref_d_weight)

    np.savez(output, **results)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
