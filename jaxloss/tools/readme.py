"""Regenerates the README's measured tables from the JSON of one ``verify`` and one ``bench`` run.

    jaxloss verify --json verify.json
    jaxloss bench --steps --json bench.json
    jaxloss bench --cost linear_cross_entropy --memory-plot memory.png --json memory.json
    python -m jaxloss.tools.readme --verify verify.json --bench bench.json --memory memory.json \
        --figures notebooks/figures [README.md]

Each generated region of the README sits between ``<!-- begin: NAME -->`` and
``<!-- end: NAME -->``; everything between them is replaced, and nothing outside them. Every
region names the run it comes from (command, versions, machine and wall time), so that each
number in it comes from that one run. Regions:

* ``verify-summary`` and ``verify-float32``: the pass count and the float32 precision table;
* ``bench-summary``, ``bench-steps`` and ``bench-costs``: the training steps and the isolated
  costs (the ``forward`` and ``reference`` rows left out, as the README does);
* ``bench-linear-memory``: ``linear_cross_entropy``'s temporaries against the vocabulary, from a
  run with ``--memory-plot`` (``--memory``), which ``--figures DIR`` redraws as
  ``DIR/linear_memory.png``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from jaxloss.tools import bench as _bench
from jaxloss.tools import verify as _verify

LEFT_OUT = ("forward", "reference")  # bench rows the README does not show


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _run(record: dict[str, Any]) -> str:
    return (
        f"`{record['command']}` on {record['machine']}, {record['versions']}, {_minutes(record['seconds'])} wall time"
    )


def verify_regions(record: dict[str, Any]) -> dict[str, str]:
    """The verify regions from ``jaxloss verify --json``."""
    rows = [_verify.PrecisionRow(**r) for r in record["precision"] if r["dtype"] == "float32"]
    return {
        "verify-summary": f"{record['passed']} passed, {record['failed']} failed: {_run(record)}.",
        "verify-float32": "```\n" + _verify.format_precision_table(rows) + "\n```",
    }


def bench_regions(record: dict[str, Any]) -> dict[str, str]:
    """The step and cost regions from ``jaxloss bench --json``."""
    results = [
        _bench.Result(**{**r, "shape": tuple(r["shape"])})
        for r in record["results"]
        if r["implementation"] not in LEFT_OUT
    ]
    regions = {"bench-summary": f"From {_run(record)}."}
    if record.get("steps"):
        regions["bench-steps"] = "```\n" + _bench.format_steps(record["steps"]) + "\n```"
    if results:
        regions["bench-costs"] = "```\n" + _bench.format_results(results) + "\n```"
    return regions


def memory_regions(record: dict[str, Any], figures: str | None = None) -> dict[str, str]:
    """The memory region from ``jaxloss bench --memory-plot PATH --json``; with ``figures``, the
    plot is redrawn there as ``linear_memory.png`` (needs matplotlib)."""
    memory = record.get("linear_memory")
    if not memory:
        raise ValueError("the bench record has no linear_memory: run bench with --memory-plot")
    lines = [
        f"From {_run(record)}; N={memory['rows']}, D={memory['dim']}, float32:",
        "",
        '| V | fused, per example | fused, `reduction="mean"` | logits, then the cost | ratios |',
        "|---|---|---|---|---|",
    ]
    columns = (memory["vocabs"], memory["jaxloss"], memory["jaxloss mean"], memory["unfused"])
    for vocab, fused, reduced, unfused in zip(*columns, strict=True):
        lines.append(
            f"| {vocab} | {fused:.1f} MiB | {reduced:.1f} MiB | {unfused:.0f} MiB "
            f"| {unfused / fused:.0f}×, {unfused / reduced:.1f}× |"
        )
    if figures:
        curves = {name: memory[name] for name in ("jaxloss", "jaxloss mean", "unfused")}
        _bench.plot_linear_memory(
            f"{figures}/linear_memory.png", memory["rows"], memory["dim"], memory["vocabs"], curves
        )
    return {"bench-linear-memory": "\n".join(lines)}


def replace_regions(text: str, regions: dict[str, str]) -> str:
    """``text`` with the body of each ``<!-- begin: NAME -->`` region replaced; raises for a missing one."""
    for name, body in regions.items():
        pattern = re.compile(rf"(<!-- begin: {re.escape(name)} -->\n).*?(\n<!-- end: {re.escape(name)} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"the README has no region {name!r}")
        text = pattern.sub(lambda m: m.group(1) + body + m.group(2), text)  # noqa: B023 (used at once)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxloss.tools.readme", description=__doc__.split("\n\n")[0])
    parser.add_argument("readme", nargs="?", default="README.md", help="the file to rewrite (default README.md)")
    parser.add_argument("--verify", metavar="JSON", help="the JSON of one `jaxloss verify --json` run")
    parser.add_argument("--bench", metavar="JSON", help="the JSON of one `jaxloss bench --json` run")
    parser.add_argument("--memory", metavar="JSON", help="the JSON of a `jaxloss bench --memory-plot P --json` run")
    parser.add_argument("--figures", metavar="DIR", help="redraw the memory figure into this folder")
    args = parser.parse_args(argv)
    makers: list[tuple[str | None, Callable[[dict[str, Any]], dict[str, str]]]] = [
        (args.verify, verify_regions),
        (args.bench, bench_regions),
        (args.memory, lambda record: memory_regions(record, args.figures)),
    ]
    regions: dict[str, str] = {}
    for path, make in makers:
        if path:
            with open(path) as f:
                regions.update(make(json.load(f)))
    if not regions:
        parser.error("give --verify, --bench or both")
    with open(args.readme) as f:
        text = f.read()
    with open(args.readme, "w") as f:
        f.write(replace_regions(text, regions))
    print(f"{args.readme}: rewrote {', '.join(sorted(regions))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
