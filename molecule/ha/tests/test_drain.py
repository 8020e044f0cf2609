"""playbooks/drain.yml in the keepalived mode, on the pair: under steady requests from the client,
the first real server gets weight 0 in keepalived.conf on both directors (director_ha_drained, a
reload), its connections end, a drain_tasks file runs on it, and it is put back. No request
fails; while the task file ran, both directors listed it at weight 0 with no connection (the
file reads their tables) and it took no request from the client (its access log, and who
answered the client); afterwards both directors have it back with its weight, and keepalived.conf
no longer drains it. A drain_host that is no real server stops the run before anything changes.

ansible-playbook runs against Molecule's inventory (MOLECULE_INVENTORY_FILE, its group_vars next
to it), with this checkout's collection, as the converge does. The client closes each connection
with a reset, so the kernel forgets it 10 s later and the drain ends quickly under traffic."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(PROJECT))
from tests.drain_load import LOAD  # noqa: E402  (the lab test's load: one script for both)

MARKER = "/tmp/lvs-drain-marker.json"
ACCESS_LOG = "/var/log/apache2/access.log"


# drain_tasks: runs on the drained real server. Both directors' tables (delegated), and its access
# log's lines from the client (the directors' health checks come from their own addresses)
# before and after a few seconds of the client's traffic.
TASKS = """
- name: Note the time and the client's lines in the access log
  ansible.builtin.shell: date +%s.%N; grep -c '^{client} ' {log} || true
  register: before
  changed_when: false

- name: Read both directors' tables
  ansible.builtin.command: ipvsadm -Ln
  delegate_to: "{{{{ item }}}}"
  loop: "{{{{ groups['directors'] }}}}"
  register: tables
  changed_when: false

- name: Let the client's requests go on
  ansible.builtin.command: sleep 4
  changed_when: false

- name: Note the time and the client's lines again
  ansible.builtin.shell: date +%s.%N; grep -c '^{client} ' {log} || true
  register: after
  changed_when: false

- name: Write the marker
  ansible.builtin.copy:
    dest: {marker}
    content: "{{{{ {{'before': before.stdout_lines, 'after': after.stdout_lines, 'tables': tables.results | map(attribute='stdout') | list}} | to_json }}}}"
    mode: "0644"
"""


def weights_of(table, address):
    """(weight, active, inactive) of ADDRESS:80 in an `ipvsadm -Ln` TABLE, or None."""
    match = re.search(rf"-> {re.escape(address)}:80\s+\S+\s+(\d+)\s+(\d+)\s+(\d+)", table)
    return tuple(int(n) for n in match.groups()) if match else None


@pytest.fixture(scope="module")
def drained(pair, tmp_path_factory, playbook):
    """drain.yml on the first real server under the client's traffic: what everyone saw."""
    victim, client = pair.realservers[0], pair.client
    tmp_path = tmp_path_factory.mktemp("drain")
    tasks = tmp_path / "maintenance.yml"
    tasks.write_text(TASKS.format(client=pair.address(client), log=ACCESS_LOG, marker=MARKER))
    pair.run(victim, f"rm -f {MARKER}")
    pair.run(client, f"rm -f /tmp/lvs-drain-load.json /tmp/lvs-drain-stop; (python3 -c '{LOAD}' {pair.vip} 300 >/dev/null 2>&1 &)")
    try:
        time.sleep(2)
        started = time.monotonic()
        run = playbook(tmp_path, "playbooks/drain.yml", "-e", f"drain_host={victim}", "-e", f"drain_tasks={tasks}", "-e", "drain_timeout=90")
        took = time.monotonic() - started
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
        time.sleep(3)
    finally:
        pair.run(client, "touch /tmp/lvs-drain-stop; for i in $(seq 50); do test -e /tmp/lvs-drain-load.json && break; sleep 0.2; done")
    seen = {
        "victim": victim,
        "address": pair.address(victim),
        "load": json.loads(pair.run(client, "cat /tmp/lvs-drain-load.json")),
        "marker": json.loads(pair.run(victim, f"cat {MARKER}")),
        "tables": {d: pair.run(d, "ipvsadm -Ln") for d in pair.directors},
        "confs": {d: pair.run(d, "cat /etc/keepalived/keepalived.conf") for d in pair.directors},
    }
    print(f"drain.yml took {took:.1f} s; {len(seen['load'])} requests")
    return seen


def test_drain_no_request_fails(drained, pair):
    answers = [who for _t, who in drained["load"]]
    assert answers.count("FAILED") == 0 and len(answers) > 50, answers
    assert set(answers) == set(pair.realservers), answers


def test_drain_both_directors_hold_it_at_weight_0_without_connections_while_drain_tasks_runs(drained, pair):
    marker = drained["marker"]
    # drain_tasks read them in groups['directors'] order: Molecule's, the platforms' (pair.directors).
    for director, table in zip(pair.directors, marker["tables"], strict=True):
        assert weights_of(table, drained["address"]) == (0, 0, 0), f"{director}: {table}"
    (start, before), (end, after) = marker["before"], marker["after"]
    assert before == after, f"{drained['victim']} got requests from the client while it was out: {before} -> {after} lines"
    during = [who for t, who in drained["load"] if float(start) <= t <= float(end) - 1]
    assert len(during) >= 5 and set(during) == {pair.realservers[1]}, during


def test_drain_it_is_back_with_its_weight_on_both_directors(drained, pair):
    for director in pair.directors:
        assert weights_of(drained["tables"][director], drained["address"])[0] == 1, drained["tables"][director]
        conf = drained["confs"][director]
        block = re.search(rf"real_server {re.escape(drained['address'])} 80 \{{\s+weight (\d+)", conf)
        assert block and block[1] == "1", conf
    assert drained["victim"] in [who for _t, who in drained["load"][-10:]], drained["load"][-10:]
    assert len(set(pair.requests(4))) == 2


def test_drain_a_drain_host_that_is_no_real_server_changes_nothing(drained, pair, tmp_path, playbook):
    confs = {d: pair.run(d, "md5sum /etc/keepalived/keepalived.conf") for d in pair.directors}
    run = playbook(tmp_path, "playbooks/drain.yml", "-e", "drain_host=192.0.2.99")
    assert run.returncode != 0 and "drain_host: 192.0.2.99 is not a real server" in run.stdout, run.stdout[-3000:]
    assert {d: pair.run(d, "md5sum /etc/keepalived/keepalived.conf") for d in pair.directors} == confs
