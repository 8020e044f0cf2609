"""Fixtures for tests that drive the lab from the host (scripts/lab must be up)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parents[2]
LAB = PROJECT / "scripts" / "lab"
VIP = "172.25.8.100"


def lab(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run scripts/lab with ARGS; the result, whatever its exit code."""
    return subprocess.run([str(LAB), *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def must(result: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a run that must have succeeded; else fail with what it printed."""
    if result.returncode != 0:
        pytest.fail(f"{result.args} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result.stdout


def in_container(name: str, script: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a shell script inside a lab container, through the lab's engine host."""
    return lab("run", "--", "docker", "exec", name, "sh", "-c", script, timeout=timeout)


@pytest.fixture(scope="session")
def lab_env() -> dict[str, str]:
    """The lab's environment (DOCKER_HOST); fails, never skips, when the lab is down."""
    status = lab("status")
    if status.returncode != 0:
        pytest.fail(
            "the lab is down, and these tests need its IPVS kernel and Docker engine: "
            f"run `scripts/lab up` (scripts/test does it for you).\n{status.stdout}{status.stderr}"
        )
    env = {}
    for line in must(lab("env")).splitlines():
        key, _sep, value = line.removeprefix("export ").partition("=")
        env[key] = value
    return env


@pytest.fixture(scope="session")
def run_dir(lab_env: dict[str, str]) -> Path:
    """The lab's runtime directory (sockets, pid files, logs)."""
    return Path(os.environ.get("LAB_RUN", "/run/lvs-dr-lab"))


def get_from_client(count: int, flush_neighbours: bool = False, client: str = "client", vip: str = VIP) -> list[str]:
    """COUNT HTTP requests from the CLIENT container to the VIP, each a new connection: who
    answered each (the real servers' pages name them)."""
    flush = "ip neigh flush all; " if flush_neighbours else ""
    script = f"{flush}for i in $(seq {count}); do curl -sS --noproxy '*' --max-time 5 http://{vip}/ || echo FAILED; done"
    return must(in_container(client, script)).split()


def assert_round_robin(answers: list[str], servers: list[str]) -> None:
    """Strict alternation over SERVERS, each answering as often."""
    assert len(set(answers)) == len(servers) and sorted(set(answers)) == sorted(servers), answers
    assert all(answers[i] != answers[i + 1] for i in range(len(answers) - 1)), f"not strict round robin: {answers}"
    assert len({answers.count(s) for s in servers}) == 1, f"uneven: {answers}"


def client_neighbour_of_vip(client: str = "client", vip: str = VIP) -> str:
    """Flush the CLIENT's neighbour table, request the VIP once, and return the MAC the
    client learnt for the VIP."""
    get_from_client(1, flush_neighbours=True, client=client, vip=vip)
    neigh = must(in_container(client, f"ip neigh show {vip}"))
    match = re.search(r"lladdr ([0-9a-f:]{17})", neigh)
    assert match, f"no neighbour entry for the VIP: {neigh!r}"
    return match.group(1)


DEV_VENV = PROJECT / ".venv"
# The oldest ansible-core that meta/runtime.yml admits, alone (requirements-2.16.txt; scripts/venv
# makes it): the site converge runs with it.
OLDEST_VENV = PROJECT / os.environ.get("VENV_OLDEST", "build/venv-2.16")


def oldest_collections() -> Path:
    """A collections path for OLDEST_VENV: lvs.dr (this checkout), and from the dev venv's
    `ansible` package only what the lab's controller side needs and ansible-core lacks:
    community.docker (the docker_api connection to the lab's containers) and ansible.posix (the
    profile_tasks callback scripts/test turns on). What the roles need is core's alone:
    tests/collection/test_build.py proves it."""
    root = PROJECT / "build" / "collections-oldest" / "ansible_collections"
    [installed] = DEV_VENV.glob("lib/python3*/site-packages/ansible_collections")
    for name, source in (("lvs/dr", PROJECT), ("community/docker", installed / "community" / "docker"), ("ansible/posix", installed / "ansible" / "posix")):
        link = root / name
        if not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source)
    return root.parent


def ansible(lab_env: dict[str, str], tool: str, *args: str, fact_cache: Path | None = None, venv: Path = DEV_VENV) -> subprocess.CompletedProcess[str]:
    """Run an Ansible TOOL (ansible-playbook, ansible) of VENV on the lab, from the checkout
    with its ansible.cfg, with ARGS; the result, whatever its exit code. With FACT_CACHE (a
    folder), facts are gathered once per host into it and then reused: only for runs that
    change nothing the facts show."""
    env = {**os.environ, **lab_env, "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    if fact_cache:
        env.update(ANSIBLE_GATHERING="smart", ANSIBLE_CACHE_PLUGIN="jsonfile", ANSIBLE_CACHE_PLUGIN_CONNECTION=str(fact_cache))
    if venv != DEV_VENV:
        if not (venv / "bin" / tool).exists():
            pytest.fail(f"{venv} has no {tool}: make it with `scripts/venv` (scripts/test does)")
        env["ANSIBLE_COLLECTIONS_PATH"] = str(oldest_collections())
    argv = [str(venv / "bin" / tool), *args]
    return subprocess.run(argv, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=1800, check=False)


def site(lab_env: dict[str, str], *args: str, venv: Path = DEV_VENV) -> tuple[str, dict[str, dict[str, int]]]:
    """Run site.yml on inventories/lab with VENV's ansible-playbook, with ARGS (--limit, -e ...);
    its output and each host's recap counts."""
    playbook = ansible(lab_env, "ansible-playbook", "playbooks/site.yml", "-i", "inventories/lab", *args, venv=venv)
    assert playbook.returncode == 0, playbook.stdout[-5000:] + playbook.stderr[-3000:]
    return playbook.stdout, recap_of(playbook.stdout)


def recap_of(output: str) -> dict[str, dict[str, int]]:
    """Each host's counts (ok, changed, failed, ...) in the PLAY RECAP of an ansible-playbook OUTPUT."""
    return {host: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)} for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.MULTILINE)}


TOPOLOGY = ("director", "rs1", "rs2", "client")


def topology_ids() -> list[str]:
    """The IDs of the topology's containers: `scripts/lab reset` recreates them (new IDs), a
    `docker restart` keeps them."""
    return must(lab("run", "--", "docker", "inspect", "--format", "{{.Id}}", *TOPOLOGY)).split()


# One converge a session, shared by the modules that use it (each converge takes minutes).
_CONVERGED: dict[str, Any] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that need no converge first, each module's order kept: test_seed_dr recreates
    the topology, so the converge after it serves every module that uses it (once a session)."""
    items.sort(key=lambda item: "converged" in getattr(item, "fixturenames", ()))


@pytest.fixture(scope="module")
def converged(lab_env: dict[str, str]) -> dict[str, dict[str, int]]:
    """site.yml's first run on fresh containers, with the oldest ansible-core admitted (the
    later runs of tests/lab use the dev venv's): each host's recap counts. Reused by the next
    module while the containers are the same ones; converged again after a module reset them
    (test_seed_dr may: pytest_collection_modifyitems runs it before the converge)."""
    if _CONVERGED and _CONVERGED["ids"] == topology_ids():
        return _CONVERGED["recap"]
    _CONVERGED.clear()
    must(lab("reset"))
    out, recap = site(lab_env, venv=OLDEST_VENV)
    # Kept for a look at where the time goes (scripts/test turns on profile_tasks).
    log = PROJECT / "build" / "test-results" / "site-converge.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"# {OLDEST_VENV.name}/bin/ansible-playbook playbooks/site.yml -i inventories/lab\n{out}")
    _CONVERGED.update(ids=topology_ids(), recap=recap)
    return recap
