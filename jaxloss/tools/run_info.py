"""What every record of a run says about itself: the versions, the machine, and the JSON header.

``jaxloss --version``, ``jaxloss bench --json`` and ``jaxloss verify --json`` read them here, so that
the command-line entry point and the tools do not import each other.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any


def versions() -> str:
    """The versions of jaxloss, jax and jaxlib, on one line."""
    import jax
    import jaxlib

    import jaxloss

    return f"jaxloss {jaxloss.__version__} (jax {jax.__version__}, jaxlib {jaxlib.__version__})"


def machine() -> str:
    """The host's processor and core count, and the accelerator JAX sees, on one line."""
    import jax

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    device = jax.devices()[0]
    accelerator = "" if device.platform == "cpu" else f", {device.device_kind}"
    return f"{model}, {os.cpu_count()} cores{accelerator}"


def header(command: str, argv: Sequence[str] | None, started: float) -> dict[str, Any]:
    """The fields that open a run's JSON record: versions, machine, the command line, seconds, backend and device.

    ``command`` is ``"jaxloss bench"`` or ``"jaxloss verify"``; ``argv`` its arguments (None: from ``sys.argv``);
    ``started`` the run's ``time.perf_counter()`` at its start.
    """
    import jax

    device = jax.devices()[0]
    return {
        "versions": versions(),
        "machine": machine(),
        "command": f"{command} " + " ".join(sys.argv[2:] if argv is None else argv),
        "seconds": time.perf_counter() - started,
        "backend": device.platform,
        "device": device.device_kind,
    }
