"""Two site.yml runs against the converged director at once, both adding the same 1,000
services: both must succeed, the table must be the wanted one, and the saved rules too. Then one
run with director_table_state=exact takes the director back to the seed's table.

Whether the two runs' writes overlap depends on timing (the module-level test in
tests/integration/ipvs/test_ipvs_table.py provokes that for certain); this one shows that two
whole playbook runs, handlers and files included, live side by side."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

from .conftest import ansible, assert_round_robin, get_from_client, in_container, must

REALS = [{"address": "172.25.8.2"}, {"address": "172.25.8.3"}]
SEED = {"protocol": "tcp", "address": "172.25.8.100", "port": 80, "scheduler": "rr"}
MORE = [{"protocol": "tcp", "address": "172.25.8.100", "port": 1000 + i, "scheduler": "rr", "reals": REALS} for i in range(1000)]


def director_run(lab_env, tmp_path, name, extra):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(extra))
    return ansible(lab_env, "ansible-playbook", "playbooks/site.yml", "-i", "inventories/lab", "--limit", "director", "-e", f"@{path}", "-v")


def table_lines(text: str) -> list[str]:
    return sorted(line for line in text.splitlines() if line.startswith("-"))


def test_two_runs_at_once_both_succeed_and_make_the_wanted_table(converged, lab_env, tmp_path):
    extra = {"director_services": [SEED, *MORE]}
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda name: director_run(lab_env, tmp_path, name, extra), ["a", "b"]))
    for run in runs:
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    races = [int(m) for run in runs for m in re.findall(r'"lost_races": (\d+)', run.stdout)]
    print(f"lost races of the two runs: {races}")  # the figure docs/robustness.md quotes
    saved = table_lines(must(in_container("director", "ipvsadm -Sn")))
    assert len(saved) == 1 + 2 + 1000 * 3, saved[:5]
    assert table_lines(must(in_container("director", "cat /etc/ipvsadm.rules"))) == saved

    back = director_run(lab_env, tmp_path, "back", {"director_table_state": "exact"})
    assert back.returncode == 0, back.stdout[-4000:] + back.stderr[-2000:]
    saved = table_lines(must(in_container("director", "ipvsadm -Sn")))
    assert saved == sorted(["-A -t 172.25.8.100:80 -s rr", "-a -t 172.25.8.100:80 -r 172.25.8.2:80 -g -w 1", "-a -t 172.25.8.100:80 -r 172.25.8.3:80 -g -w 1"])
    assert table_lines(must(in_container("director", "cat /etc/ipvsadm.rules"))) == saved
    assert_round_robin(get_from_client(20), ["rs1", "rs2"])
