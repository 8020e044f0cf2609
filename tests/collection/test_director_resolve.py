"""The director role's resolution step (roles/director/tasks/resolve.yml): each service gets the
default scheduler and, without "reals", the hosts of the realservers group. Run on localhost by
ansible-playbook as the role runs it, twice in one play (a play that lists the role twice, or
include_role in a loop): the second run must give the same list, not every entry twice (the
ipvs_table task then failed with "listed twice"). No lab, no root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]

SERVICES = [
    {"protocol": "tcp", "address": "10.9.0.1", "port": 80},
    {"protocol": "tcp", "address": "10.9.0.1", "port": 8080, "scheduler": "wlc", "reals": [{"address": "10.9.0.9", "weight": 3}]},
    {"fwmark": 7},
]
GROUP_REALS = [{"address": "10.9.0.2"}, {"address": "10.9.0.3"}]
EXPECTED = [
    {**SERVICES[0], "scheduler": "rr", "reals": GROUP_REALS},
    SERVICES[1],
    {"fwmark": 7, "scheduler": "rr", "reals": GROUP_REALS},
]


def test_resolving_twice_in_one_play_lists_each_service_once(tmp_path: Path) -> None:
    inventory = {
        "all": {
            "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
            "children": {
                "realservers": {
                    "hosts": {
                        "rs1": {"realserver_address": "10.9.0.2"},
                        "rs2": {"realserver_address": "10.9.0.3"},
                    }
                }
            },
        }
    }
    resolve = {
        "ansible.builtin.include_role": {"name": "lvs.dr.director", "tasks_from": "resolve"},
        "vars": {"director_services": SERVICES, "director_default_scheduler": "rr", "director_realserver_group": "realservers"},
    }
    playbook = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {**resolve, "name": "Resolve once"},
                {"name": "Keep the first result", "ansible.builtin.set_fact": {"first": "{{ director_services_resolved }}"}},
                {**resolve, "name": "Resolve again, as a second run of the role in the same play does"},
                # A file, not the json callback: ansible-core 2.16 has none of its own (scripts/test runs this in 2.16 too).
                {
                    "name": "Write both",
                    "ansible.builtin.copy": {
                        "dest": str(tmp_path / "shown.json"),
                        "content": "{{ {'first': first, 'second': director_services_resolved} | to_json }}",
                    },
                },
            ],
        }
    ]
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(json.dumps(playbook))
    env = {**os.environ, "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "inventory.json"), str(tmp_path / "play.yml")],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shown = json.loads((tmp_path / "shown.json").read_text())
    assert shown["first"] == EXPECTED
    assert shown["second"] == EXPECTED
