"""The keepalived pair's topology: molecule/default's (its conftest, loaded under another name),
with both directors, and what tells them apart: who holds the VIP."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

_spec = importlib.util.spec_from_file_location("lvs_default_topology", Path(__file__).resolve().parents[2] / "default" / "tests" / "conftest.py")
seed = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(seed)

PROJECT = Path(__file__).resolve().parents[3]

# How long the tests wait for a change to show (a failover, a health check's verdict). The
# role's defaults promise about 5 s for a dead real server and 4 s for a failover; the rest
# is room for the lab's one busy vCPU. The figures themselves are bench/run failover's.
SETTLE = 30


@dataclass
class Pair(seed.Topology):
    directors: tuple[str, ...] = ()

    def holders(self):
        """The directors that have the VIP bound."""
        return [d for d in self.directors if re.search(rf"inet {re.escape(self.vip)}/", self.run(d, "ip -4 -o addr show"))]

    def wait_for(self, what, predicate, timeout=SETTLE):
        """Poll PREDICATE (a callable) until it returns a true value; that value, or a failure naming WHAT."""
        deadline, value = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.5)
        pytest.fail(f"{what}: not within {timeout}s (last: {value!r})")

    def master(self):
        holders = self.wait_for("one director holds the VIP", lambda: (h := self.holders()) and len(h) == 1 and h)
        return holders[0]

    def table_of(self, director):
        self.director = director
        return self.parsed_ipvs_table()


def run_playbook(tmp_path, name, *extra):
    """ansible-playbook NAME (a path in the checkout) on Molecule's inventory (its group_vars next
    to it) with EXTRA arguments, and this checkout's collection, as the converge runs: the result."""
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(PROJECT / ".collections"),
        "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PIPELINING": "1",
    }
    argv = [str(Path(sys.executable).with_name("ansible-playbook")), name, "-i", os.environ["MOLECULE_INVENTORY_FILE"], *extra]
    return subprocess.run(argv, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=900, check=False)


@pytest.fixture(scope="session")
def playbook():
    """run_playbook, for the tests."""
    return run_playbook


@pytest.fixture(scope="session")
def pair():
    if not os.environ.get("DOCKER_HOST"):
        pytest.fail('DOCKER_HOST is not set: run `eval "$(scripts/lab env)"` (scripts/molecule does).')
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"])
    groups = {name: sorted((group or {}).get("hosts") or {}) for name, group in yaml.safe_load(inventory.read_text()).items()}
    services = yaml.safe_load((inventory.parent / "group_vars" / "directors").read_text())["director_services"]
    topo = Pair(
        vip=services[0]["address"],
        director=groups["directors"][0],
        realservers=groups["realservers"],
        client=groups["clients"][0],
        services=services,
        directors=tuple(groups["directors"]),
    )
    for name in (*topo.directors, *topo.realservers, topo.client):
        topo.wait_booted(name)
    return topo
