"""Every YAML example of README.md works as written, so none can rot.

Each ```yaml block of README.md has a comment before it that says what it is:
- `<!-- readme-example: file PATH -->`: the file PATH of the repository, verbatim (the example
  inventory: tests/collection/test_example_inventory.py parses it and syntax-checks site.yml with it);
- `<!-- readme-example: by-hand inventory -->` and `<!-- readme-example: by-hand playbook -->`: the
  example by hand, run on containers of this test's own, with the inventory's documentation
  addresses 192.0.2.N as 172.25.10.N. Then 20 requests from a client to the VIP strictly alternate
  between the two real servers, and the client's ARP entry for the VIP is the director's MAC;
- `<!-- readme-example: director tasks -->`: tasks run on that director after it, in the README's
  order, in a play with the venv's Python (as the README says); `director tasks, changes nothing`:
  their run must also change nothing.

The containers (readme-lb1 .1, readme-web1 .11, readme-web2 .12, readme-client .250 on network
lvs-readme 172.25.10.0/24) run the lab's baked image, as the seed topology does, in the lab's
engine; they are removed afterwards. The real servers' pages name them (the README's example
starts from real servers that already serve HTTP).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from .conftest import PROJECT, ansible, assert_round_robin, client_neighbour_of_vip, get_from_client, in_container, must, recap_of

README = PROJECT / "README.md"
NETWORK = "lvs-readme"
SUBNET = "172.25.10"
# The inventory's hosts, each in a container of the same name prefixed with readme-; the client
# is the test's own.
HOSTS = {"lb1": 1, "web1": 11, "web2": 12}
CLIENT = "readme-client"
VIP = f"{SUBNET}.100"
VENV_PYTHON = "/opt/lvs-dr/venv/bin/python"
# The seed topology's image: the roles' Debian packages (apache2, arptables, python3-venv) are installed.
IMAGE = "lvs-dr-lab/debian12:baked"
EXAMPLE = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)
MARK = re.compile(r"<!-- readme-example: (.+?) -->\n$")


def readme_examples() -> list[tuple[int, str, str]]:
    """Each ```yaml block of README.md: its line, what its comment says it is, its text."""
    text = README.read_text(encoding="utf-8")
    examples = []
    for block in EXAMPLE.finditer(text):
        line = text.count("\n", 0, block.start()) + 1
        before = text[: block.start()].rstrip("\n").rsplit("\n", 1)[-1] + "\n"
        mark = MARK.match(before)
        examples.append((line, mark.group(1) if mark else "", block.group(1)))
    return examples


def examples_of(kind: str) -> list[tuple[int, str, str]]:
    return [example for example in readme_examples() if example[1].startswith(kind)]


def in_lab_subnet(text: str) -> str:
    """The README's documentation addresses (192.0.2.N) as this test's (172.25.10.N)."""
    return re.sub(r"\b192\.0\.2\.(\d+)\b", rf"{SUBNET}.\1", text)


KINDS = ("file ", "by-hand inventory", "by-hand playbook", "director tasks")


def test_every_yaml_example_says_how_it_is_run() -> None:
    examples = readme_examples()
    assert examples, "README.md has no ```yaml block: has the pattern gone stale?"
    unmarked = [line for line, kind, _text in examples if not kind.startswith(KINDS)]
    assert not unmarked, f"README.md lines {unmarked}: a ```yaml block needs <!-- readme-example: KIND --> before it, KIND one of {KINDS}"
    assert len(examples_of("by-hand inventory")) == 1 and len(examples_of("by-hand playbook")) == 1


@pytest.mark.parametrize("example", examples_of("file "), ids=lambda e: e[1].removeprefix("file "))
def test_file_example_is_the_file(example: tuple[int, str, str]) -> None:
    line, kind, text = example
    path = PROJECT / kind.removeprefix("file ")
    assert path.is_file() and path.read_text(encoding="utf-8") == text, f"README.md line {line} differs from {path}"


def docker(lab_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The docker CLI on the lab's engine (DOCKER_HOST); the result, whatever its exit code."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, env={**os.environ, **lab_env}, timeout=300, check=False)


CONTAINERS = [f"readme-{host}" for host in HOSTS] + [CLIENT]


# Right after `docker run`, systemd may not answer yet (is-system-running then fails at once):
# ask again until it says the boot is over, as molecule/prepare.yml does.
BOOTED = """for i in $(seq 60); do
    state=$(timeout 120 systemctl is-system-running --wait 2>&1)
    case $state in running|degraded) exit 0 ;; esac
    sleep 1
done
echo "systemd: $state"; exit 1"""


def remove_containers(lab_env: dict[str, str]) -> None:
    docker(lab_env, "rm", "-f", *CONTAINERS)
    docker(lab_env, "network", "rm", NETWORK)


@pytest.fixture(scope="module")
def readme_lab(lab_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The containers, the real servers' pages written, and the inventories to reach them: the
    README's (in this subnet) and one that enters the containers through the lab's engine."""
    env = lab_env
    remove_containers(env)
    must(docker(env, "network", "create", "--subnet", f"{SUBNET}.0/24", "--gateway", f"{SUBNET}.254", NETWORK))
    try:
        # As scripts/lab starts the seed topology: systemd as PID 1, privileged for IPVS and arptables.
        start = ["--privileged", "--cgroupns=private", "--stop-signal", "SIGRTMIN+3", "--tmpfs", "/run", "--tmpfs", "/run/lock"]
        addresses = {**{f"readme-{host}": last for host, last in HOSTS.items()}, CLIENT: 250}
        with ThreadPoolExecutor(len(CONTAINERS)) as pool:
            runs = [
                pool.submit(docker, env, "run", "-d", "--name", name, "--hostname", name, "--network", NETWORK, "--ip", f"{SUBNET}.{last}", *start, IMAGE)
                for name, last in addresses.items()
            ]
            for run in runs:
                must(run.result())
            for boot in [pool.submit(docker, env, "exec", name, "sh", "-c", BOOTED) for name in CONTAINERS]:
                must(boot.result())
        for host in HOSTS:
            if host.startswith("web"):
                must(docker(env, "exec", f"readme-{host}", "sh", "-c", f"echo {host} >/var/www/html/index.html && systemctl is-active --quiet apache2"))
        work = tmp_path_factory.mktemp("readme")
        (work / "readme-inventory.yml").write_text(in_lab_subnet(examples_of("by-hand inventory")[0][2]))
        # A second inventory source overrides the first's host variables: ansible_host names the container.
        connection = {
            "all": {
                "vars": {"ansible_connection": "community.docker.docker_api", "ansible_docker_docker_host": env["DOCKER_HOST"]},
                "hosts": {host: {"ansible_host": f"readme-{host}"} for host in HOSTS},
            }
        }
        (work / "containers.yml").write_text(json.dumps(connection))
        yield work
    finally:
        remove_containers(env)


def run_playbook(lab_env: dict[str, str], work: Path, name: str, plays: str) -> dict[str, dict[str, int]]:
    """Run PLAYS (YAML text) on the README's inventory in the containers; each host's recap counts."""
    (work / name).write_text(plays)
    # The containers are entered as root and have no sudo.
    args = ["-i", str(work / "readme-inventory.yml"), "-i", str(work / "containers.yml"), "-e", "ansible_become=false", str(work / name)]
    result = ansible(lab_env, "ansible-playbook", *args)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    return recap_of(result.stdout)


@pytest.fixture(scope="module")
def by_hand(lab_env: dict[str, str], readme_lab: Path) -> dict[str, dict[str, int]]:
    """The example by hand, run once: each host's recap counts."""
    return run_playbook(lab_env, readme_lab, "by-hand.yml", in_lab_subnet(examples_of("by-hand playbook")[0][2]))


def test_by_hand_example_balances_round_robin(by_hand: dict[str, dict[str, int]]) -> None:
    assert all(by_hand[host]["changed"] > 0 for host in HOSTS), by_hand
    answers = get_from_client(20, flush_neighbours=True, client=CLIENT, vip=VIP)
    assert len(answers) == 20, answers
    assert_round_robin(answers, ["web1", "web2"])


def test_client_resolves_vip_to_the_director(by_hand: dict[str, dict[str, int]]) -> None:
    director_mac = must(in_container("readme-lb1", "cat /sys/class/net/eth0/address")).strip()
    assert client_neighbour_of_vip(client=CLIENT, vip=VIP) == director_mac


@pytest.mark.parametrize("example", examples_of("director tasks"), ids=lambda e: f"line{e[0]}")
def test_director_tasks_example_runs(lab_env: dict[str, str], readme_lab: Path, by_hand: dict[str, dict[str, int]], example: tuple[int, str, str]) -> None:
    line, kind, text = example
    play = {"name": f"README.md line {line}", "hosts": "directors", "gather_facts": False, "vars": {"ansible_python_interpreter": VENV_PYTHON}}
    play["tasks"] = yaml.safe_load(in_lab_subnet(text))
    recap = run_playbook(lab_env, readme_lab, f"line{line}.yml", json.dumps([play]))
    if kind.endswith("changes nothing"):
        assert recap["lb1"]["changed"] == 0, recap


def test_table_examples_leave_exactly_the_overridden_table(readme_lab: Path, by_hand: dict[str, dict[str, int]]) -> None:
    # After the director task examples (merged, replaced, drained, then overridden and deleted):
    # the overridden table alone, the 8080 service gone with its real servers.
    table = must(in_container("readme-lb1", "ipvsadm -Sn")).splitlines()
    assert sorted(table) == sorted([f"-A -t {VIP}:80 -s rr", f"-a -t {VIP}:80 -r {SUBNET}.11:80 -g -w 1", f"-a -t {VIP}:80 -r {SUBNET}.12:80 -g -w 1"]), table
