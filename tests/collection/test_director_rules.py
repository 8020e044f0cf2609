"""The director's saved rules (roles/director/templates/ipvsadm.rules.j2): ipvsadm-save's lines
as they are, each real server's with the thresholds ipvsadm-save leaves out. Rendered by
Ansible's template lookup on localhost, as the handler renders it; no lab, no root."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
TEMPLATE = PROJECT / "roles" / "director" / "templates" / "ipvsadm.rules.j2"

# ipvsadm -Sn of Debian 12's ipvsadm 1.31 (measured in the lab, docs/restart.md).
SAVED = [
    "-A -t 10.9.0.1:80 -s wlc -p 600 -M 255.255.255.0",
    "-a -t 10.9.0.1:80 -r 10.9.0.2:80 -g -w 3",
    "-a -t 10.9.0.1:80 -r 10.9.0.3:80 -i -w 2 --tun-type gue --tun-port 6080 --tun-nocsum",
    "-A -u 10.9.0.1:53 -s sh -b sh-fallback,sh-port",
    "-a -u 10.9.0.1:53 -r 10.9.0.5:53 -m -w 0",
    "-A -f 7 -s rr -o",
    "-a -f 7 -r 10.9.0.6:0 -g -w 1",
    "-A -t [2001:db8::1]:80 -s rr",
    "-a -t [2001:db8::1]:80 -r [2001:db8::2]:80 -g -w 1",
    "-A -f 7 -6 -s rr",
    "-a -f 7 -6 -r [2001:db8::3]:0 -g -w 1",
]


def real(address: str, port: int, upper: int = 0, lower: int = 0) -> dict[str, object]:
    return {"address": address, "port": port, "upper_threshold": upper, "lower_threshold": lower}


def service(family: str, protocol: str | None, address: str | None, port: int | None, fwmark: int | None, reals: list) -> dict[str, object]:
    return {"family": family, "protocol": protocol, "address": address, "port": port, "fwmark": fwmark, "reals": reals}


# What lvs.dr.ipvs_info returns for that table (the keys the template reads).
INFO = [
    service("ipv4", "tcp", "10.9.0.1", 80, None, [real("10.9.0.2", 80, 1000, 500), real("10.9.0.3", 80)]),
    service("ipv4", "udp", "10.9.0.1", 53, None, [real("10.9.0.5", 53, 0, 9)]),
    service("ipv4", None, None, None, 7, [real("10.9.0.6", 0, 7, 0)]),
    service("ipv6", "tcp", "2001:db8::1", 80, None, [real("2001:db8::2", 80, 10, 5)]),
    service("ipv6", None, None, None, 7, [real("2001:db8::3", 0, 7, 3)]),
]


def render(tmp_path: Path, saved: list[str], info: list[dict[str, object]]) -> list[str]:
    variables = {"director_saved_table": {"stdout_lines": saved}, "director_saved_info": {"services": info}, "ansible_python_interpreter": sys.executable}
    playbook = tmp_path / "render.yml"
    playbook.write_text(
        json.dumps(
            [
                {
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "vars": variables,
                    "tasks": [
                        {"ansible.builtin.copy": {"dest": str(tmp_path / "rules"), "content": f"{{{{ lookup('ansible.builtin.template', '{TEMPLATE}') }}}}"}}
                    ],
                }
            ]
        )
    )
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(playbook)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return (tmp_path / "rules").read_text().splitlines()


def test_thresholds_go_on_their_real_servers_lines(tmp_path: Path) -> None:
    expected = list(SAVED)
    expected[1] += " -x 1000 -y 500"
    expected[4] += " -x 0 -y 9"
    expected[6] += " -x 7 -y 0"
    expected[8] += " -x 10 -y 5"
    expected[10] += " -x 7 -y 3"
    assert render(tmp_path, SAVED, INFO) == expected


def test_without_thresholds_the_file_is_ipvsadm_saves_output(tmp_path: Path) -> None:
    info = [service("ipv4", "tcp", "10.9.0.1", 80, None, [real("10.9.0.2", 80), real("10.9.0.3", 80)])]
    assert render(tmp_path, SAVED[:3], info) == SAVED[:3]
