"""Regenerates the measured tables of the docs pages from the JSON of one ``verify`` and one ``bench`` run.

    jaxloss verify --json verify.json
    jaxloss bench --steps --json bench.json
    jaxloss bench --cost linear_cross_entropy --memory-plot memory.png --json memory.json
    python -m jaxloss.tools.readme --verify verify.json --bench bench.json --memory memory.json \
        --figures notebooks/figures [PAGE ...]

Each generated region sits between ``<!-- begin: NAME -->`` and ``<!-- end: NAME -->`` in one of
the pages (by default :data:`PAGES`, from the repository's root); everything between them is
replaced, and nothing outside them. Every region names the run it comes from (command,
versions, machine and wall time), so that each number in it comes from that one run. Regions:

* ``verify-summary`` and ``verify-float32`` (``docs/numerics.md``): the pass count and the
  float32 precision table;
* ``bench-summary``, ``bench-steps`` and ``bench-costs`` (``docs/performance.md``): the training
  steps and the isolated costs (the ``forward`` and ``reference`` rows left out, as the page does);
* ``bench-linear-memory`` (``docs/large_vocabularies.md``): ``linear_cross_entropy``'s
  temporaries against the vocabulary, from a run with ``--memory-plot`` (``--memory``), which
  ``--figures DIR`` redraws as ``DIR/linear_memory.png``.
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

LEFT_OUT = ("forward", "reference")  # bench rows the docs do not show
PAGES = ("docs/numerics.md", "docs/performance.md", "docs/large_vocabularies.md")  # the pages with regions


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
            raise ValueError(f"the text has no region {name!r}")
        text = pattern.sub(lambda m: m.group(1) + body + m.group(2), text)  # noqa: B023 (used at once)
    return text


def _has_region(text: str, name: str) -> bool:
    return f"<!-- begin: {name} -->\n" in text


def rewrite_pages(paths: Sequence[str], regions: dict[str, str]) -> dict[str, list[str]]:
    """Replaces each region in the one page of ``paths`` that holds it; returns the names rewritten
    per page. Raises ``ValueError``, before writing anything, for a region that no page or several
    pages hold."""
    texts = {}
    for path in paths:
        with open(path) as f:
            texts[path] = f.read()
    where: dict[str, list[str]] = {}
    for name in regions:
        holders = [path for path, text in texts.items() if _has_region(text, name)]
        if len(holders) != 1:
            found = "no page" if not holders else ", ".join(holders)
            raise ValueError(f"region {name!r}: {found} of {', '.join(paths)} holds it (one must)")
        where.setdefault(holders[0], []).append(name)
    for path, names in where.items():
        text = replace_regions(texts[path], {name: regions[name] for name in names})
        with open(path, "w") as f:
            f.write(text)
    return where


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxloss.tools.readme", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "pages", nargs="*", default=list(PAGES), help=f"the pages to rewrite (from the root: {', '.join(PAGES)})"
    )
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
    try:
        where = rewrite_pages(args.pages, regions)
    except ValueError as error:
        parser.error(str(error))
    for path, names in where.items():
        print(f"{path}: rewrote {', '.join(sorted(names))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
