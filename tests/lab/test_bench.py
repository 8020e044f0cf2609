"""bench/run's table benchmark, shrunk to a quick check: every case runs, each way makes the
wanted table (bench/table.py compares ipvsadm -Sn with it after A and B), and the module's write
counts are the issue's: 0 with nothing to do, 1 for one weight. The figures themselves are
docs/performance.md's, from a full run."""

from __future__ import annotations

import json
import subprocess

from .conftest import PROJECT


def test_bench_table_quick_run(lab_env):
    proc = subprocess.run(
        [str(PROJECT / "bench" / "run"), "table", "--runs", "1", "--shrink", "100", "--sample", "5", "--out", "build/bench-quick"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {r["case"]: r for r in json.loads((PROJECT / "build" / "bench-quick" / "table.json").read_text())}
    assert sorted(results) == [1, 2, 3, 4, 5]
    writes = {case: r["samples"]["writes"][0] for case, r in results.items()}
    # 10 services x (1 + 10 reals); nothing; one weight; 10 removed + 10 added; 100 x (1 + 5)
    assert writes == {1: 110, 2: 0, 3: 1, 4: 20, 5: 600}, writes
    assert "| (2) netlink writes | 0 | 0 | met |" in proc.stdout and "| (3) netlink writes | 1 | 1 | met |" in proc.stdout, proc.stdout
