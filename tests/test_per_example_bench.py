"""``jaxloss bench --per-example``: the tables it prints (tiny sizes here; the figures are in the README)."""

import re

from jaxloss.tools import bench, per_example


def test_per_example_tables_hold_every_program_with_time_ratio_and_temporaries():
    text = per_example.run(True, 2, norm_sizes=[(32, 50)], head=(8, 4, 32), step=(32, 8, 64))
    names = [
        "grad_norms",
        "vmap(grad), norm",
        "fused norms (TokenStats.grad_norm)",
        "vmap(grad) norms",
        "fused clipped gradient (clip_norm)",
        "vmap(grad), clipped and summed",
        "plain step",
        "step + norms",
        "step, clipped",
        "step + norms, segments of 32",
        "step, clipped, segments of 32",
    ]
    rows = {}
    for line in text.splitlines():
        match = re.match(r"  (.+?)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)$", line)
        if match:
            rows[match.group(1)] = tuple(float(v) for v in match.groups()[1:])
    assert sorted(rows) == sorted(names)
    for base in ["vmap(grad), norm", "vmap(grad) norms", "vmap(grad), clipped and summed", "plain step"]:
        assert rows[base][1] == 1.0  # each table's base
    assert all(ms > 0 for ms, _, _ in rows.values())


def test_bench_per_example_flag_runs_the_tables(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(per_example, "run", lambda quick, repeats: calls.append((quick, repeats)) or "TABLES")
    assert bench.main(["--per-example", "--quick"]) == 0
    assert calls == [(True, 5)] and "TABLES" in capsys.readouterr().out
