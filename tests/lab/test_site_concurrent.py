"""Two site.yml runs at once on one director (two operators, or a cron run beside a manual one):
both must succeed and leave the table the inventory asks for, saved as the kernel holds it.

Both runs add the same 200 services (ports 20000-20199 on the VIP, each with rs1 and rs2: 600
writes) to the converged director, so their writes overlap: a write the other run has just made
is refused by the kernel (EEXIST), and lvs.dr.ipvs_table re-reads the table and plans again
(docs/robustness.md, "Two runs at once"). Afterwards the director's table and saved rules are put
back as they were, so the next module finds the converged lab.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import VIP, ansible, assert_round_robin, get_from_client, in_container, must

EXTRA_PORTS = range(20000, 20200)
SERVICES = [{"protocol": "tcp", "address": VIP, "port": port, "scheduler": "rr"} for port in (80, *EXTRA_PORTS)]
REALS = ("172.25.8.2", "172.25.8.3")


def director(script: str) -> str:
    return must(in_container("director", script))


@pytest.fixture(scope="module")
def two_runs(converged, lab_env, tmp_path_factory):
    """The two runs' results, and the director's table and saved rules after them; the table
    and rules before are restored afterwards."""
    before_table = director("ipvsadm -Sn")
    director("cp -p /etc/ipvsadm.rules /root/ipvsadm.rules.before")
    extra = tmp_path_factory.mktemp("concurrent") / "extra.json"
    extra.write_text(json.dumps({"director_services": SERVICES}))
    argv = ("ansible-playbook", "playbooks/site.yml", "-i", "inventories/lab", "--limit", "directors", "-e", f"@{extra}")
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _n: ansible(lab_env, *argv), range(2)))
    after = {"table": director("ipvsadm -Sn"), "rules": director("cat /etc/ipvsadm.rules")}
    yield runs, after
    director("ipvsadm -C && ipvsadm-restore </root/ipvsadm.rules.before && mv /root/ipvsadm.rules.before /etc/ipvsadm.rules")
    assert director("ipvsadm -Sn") == before_table


def test_both_runs_succeed(two_runs):
    runs, _after = two_runs
    for run in runs:
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        assert re.search(r"^director\s+:.*failed=0", run.stdout, re.M), run.stdout[-2000:]


def test_the_table_is_what_both_asked_for(two_runs):
    _runs, after = two_runs
    services = sorted(line for line in after["table"].splitlines() if line.startswith("-A "))
    reals = sorted(line.split(" -g")[0] for line in after["table"].splitlines() if line.startswith("-a "))
    assert services == sorted(f"-A -t {VIP}:{s['port']} -s rr" for s in SERVICES)
    assert reals == sorted(f"-a -t {VIP}:{s['port']} -r {real}:{s['port']}" for s in SERVICES for real in REALS)


def test_the_saved_rules_are_the_table(two_runs):
    _runs, after = two_runs
    assert after["rules"].splitlines() == after["table"].splitlines()


def test_the_client_still_sees_round_robin(two_runs):
    assert_round_robin(get_from_client(10, flush_neighbours=True), ["rs1", "rs2"])
