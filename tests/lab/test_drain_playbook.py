"""playbooks/drain.yml in the static mode, on the lab's seed topology as site.yml left it: under
steady requests from the client, rs1 is drained from the director (weight 0, its connections
end, it leaves the table), a drain_tasks file runs on rs1, and rs1 is put back. No request fails;
while the task file ran, rs1 was not in the director's table (the file reads it, through the
director) and took no request (its access log and the client's answers); afterwards rs1 is back
with its weight, in the table and in the rules the ipvsadm service restores.

The client closes each connection with a reset (as tests/lab/test_drain_persistent.py does), so
the kernel forgets it 10 s later and the drain ends quickly under traffic. The containers share
the lab's clock: the client's times and rs1's compare."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.drain_load import LOAD

from .conftest import VIP, ansible, assert_round_robin, get_from_client, in_container, must

RS1 = "172.25.8.2"
MARKER = "/tmp/lvs-drain-marker.json"
ACCESS_LOG = "/var/log/apache2/access.log"


# drain_tasks: runs on rs1 while it is out. It reads the director's table (delegated), and rs1's
# access log before and after a few seconds of the client's traffic.
TASKS = f"""
- name: Note the time and rs1's access log
  ansible.builtin.shell: date +%s.%N; wc -l < {ACCESS_LOG}
  register: before
  changed_when: false

- name: Read the director's table
  ansible.builtin.command: ipvsadm -Ln
  delegate_to: director
  register: table
  changed_when: false

- name: Let the client's requests go on
  ansible.builtin.command: sleep 4
  changed_when: false

- name: Note the time and rs1's access log again
  ansible.builtin.shell: date +%s.%N; wc -l < {ACCESS_LOG}
  register: after
  changed_when: false

- name: Write the marker
  ansible.builtin.copy:
    dest: {MARKER}
    content: "{{{{ {{'before': before.stdout_lines, 'after': after.stdout_lines, 'table': table.stdout}} | to_json }}}}"
    mode: "0644"
"""


@pytest.fixture(scope="module")
def drained(converged, lab_env, tmp_path_factory):
    """drain.yml on rs1 under the client's traffic: what the client, rs1 and the director saw."""
    tasks = tmp_path_factory.mktemp("drain") / "maintenance.yml"
    tasks.write_text(TASKS)
    in_container("rs1", f"rm -f {MARKER}")
    must(in_container("client", f"rm -f /tmp/lvs-drain-load.json /tmp/lvs-drain-stop; (python3 -c '{LOAD}' {VIP} 300 >/dev/null 2>&1 &)"))
    try:
        time.sleep(2)
        started = time.monotonic()
        extra = ["-e", "drain_host=rs1", "-e", f"drain_tasks={tasks}", "-e", "drain_timeout=90"]
        run = ansible(lab_env, "ansible-playbook", "playbooks/drain.yml", "-i", "inventories/lab", *extra)
        took = time.monotonic() - started
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
        # Requests after the put-back, to see rs1 answer again.
        time.sleep(3)
    finally:
        in_container("client", "touch /tmp/lvs-drain-stop; for i in $(seq 50); do test -e /tmp/lvs-drain-load.json && break; sleep 0.2; done")
    seen = {
        "took": round(took, 1),
        "load": json.loads(must(in_container("client", "cat /tmp/lvs-drain-load.json"))),
        "marker": json.loads(must(in_container("rs1", f"cat {MARKER}"))),
        "table": must(in_container("director", "ipvsadm -Ln")),
        "rules": must(in_container("director", "cat /etc/ipvsadm.rules")),
        "output": run.stdout,
    }
    print(f"drain.yml took {seen['took']} s; {len(seen['load'])} requests")
    return seen


def test_no_request_fails(drained):
    answers = [who for _t, who in drained["load"]]
    assert answers.count("FAILED") == 0 and len(answers) > 50, answers
    assert set(answers) == {"rs1", "rs2"}, answers


def test_rs1_is_out_of_the_table_and_takes_no_request_while_drain_tasks_runs(drained):
    marker = drained["marker"]
    (start, before), (end, after) = marker["before"], marker["after"]
    assert f"{RS1}:80" not in marker["table"] and f"{VIP}:80" in marker["table"], marker["table"]
    assert before == after, f"rs1's access log grew from {before} to {after} lines while it was out"
    during = [who for t, who in drained["load"] if float(start) <= t <= float(end) - 1]
    assert len(during) >= 5 and set(during) == {"rs2"}, during


def test_rs1_is_back_with_its_weight_in_the_table_and_the_saved_rules(drained):
    assert re.search(rf"-> {re.escape(RS1)}:80\s+Route\s+1\s", drained["table"]), drained["table"]
    assert f"-a -t {VIP}:80 -r {RS1}:80 -g -w 1" in drained["rules"], drained["rules"]
    assert "Save the IPVS table" in drained["output"] or "Write the saved IPVS table" in drained["output"], drained["output"][-3000:]
    # The last requests of the load, after the put-back, and new ones: both real servers, in turn.
    assert "rs1" in [who for _t, who in drained["load"][-10:]], drained["load"][-10:]
    assert_round_robin(get_from_client(6), ["rs1", "rs2"])
