"""The modules by their FQCN in a playbook, as users run them: the seed's director table,
then the same play again with nothing to do."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Create the seed's virtual service
      lvs.dr.ipvs_service:
        protocol: tcp
        address: 172.25.8.100
        port: 80
        scheduler: rr
    - name: Add the seed's real servers in direct-routing mode
      lvs.dr.ipvs_real:
        protocol: tcp
        service_address: 172.25.8.100
        service_port: 80
        address: "{{ item }}"
        forwarding_method: dr
      loop: [172.25.8.2, 172.25.8.3]
    - name: Read the table back
      lvs.dr.ipvs_info:
      register: ipvs
    - name: Check that both real servers are there
      ansible.builtin.assert:
        that:
          - ipvs.services | length == 1
          - ipvs.services[0].reals | map(attribute='address') | sort == ['172.25.8.2', '172.25.8.3']
"""


def play(netns: str, playbook: Path, collections_path: Path) -> dict:
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_NOCOLOR": "1",
    }
    ansible_playbook = str(Path(sys.executable).parent / "ansible-playbook")
    proc = subprocess.run(["ip", "netns", "exec", netns, ansible_playbook, str(playbook)], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # The recap: "localhost : ok=4 changed=2 unreachable=0 failed=0 ..."
    recap = re.search(r"^localhost\s+:\s+(.*)$", proc.stdout, re.MULTILINE)
    assert recap, proc.stdout
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", recap.group(1))}


def test_seed_director_table_by_fqcn(netns, collections_path, tmp_path):
    playbook = tmp_path / "seed.yml"
    playbook.write_text(PLAY)
    first = play(netns, playbook, collections_path)
    assert first["changed"] == 2 and first["failed"] == 0, first  # the service task and the loop
    again = play(netns, playbook, collections_path)
    assert again["changed"] == 0 and again["failed"] == 0, again
    saved = subprocess.run(["ip", "netns", "exec", netns, "ipvsadm", "-Sn"], capture_output=True, text=True, check=True).stdout
    assert saved.splitlines() == [
        "-A -t 172.25.8.100:80 -s rr",
        "-a -t 172.25.8.100:80 -r 172.25.8.2:80 -g -w 1",
        "-a -t 172.25.8.100:80 -r 172.25.8.3:80 -g -w 1",
    ]
