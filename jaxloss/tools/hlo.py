"""What a compiled program communicates: the collectives in an optimised HLO module's text."""

from __future__ import annotations

import math
import re

_COLLECTIVE = re.compile(
    r"= (\(?[^=]*?\)?) (all-gather|all-reduce|all-to-all|collective-permute|reduce-scatter)(?:-start)?\("
)
_ARRAY = re.compile(r"(pred|[suf]\d+|bf16)\[([\d,]*)\]")
_BITS = {"pred": 8, "bf16": 16}


def collectives(compiled_text: str) -> list[tuple[str, int, int]]:
    """``(op, elements, bytes)`` of each collective in an optimised HLO module's text.

    Use it on ``jax.jit(f).lower(*args).compile().as_text()``; the bytes are those of the
    result on one device.
    """
    found = []
    for match in _COLLECTIVE.finditer(compiled_text):
        elements = bytes_ = 0
        for kind, dims in _ARRAY.findall(match.group(1)):
            count = math.prod(int(d) for d in dims.split(",") if d)
            elements += count
            bytes_ += count * _BITS.get(kind, int(kind[1:]) if kind[1:].isdigit() else 32) // 8
        found.append((match.group(2), elements, bytes_))
    return found
