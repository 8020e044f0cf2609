"""A director restarted (`docker restart director`: a new network namespace, so an empty IPVS
table and the kernel's default timeouts) comes back as site.yml left it: the same table,
thresholds included, the same timeouts, the VIP bound, round robin for the client.

After conftest's converge (shared with test_site, which this module sorts after), the role
runs once more on the director with a threshold on rs1 and timeouts, as a site would change
its inventory: that run also shows that the table is saved after lvs.dr.ipvs_table changes
it. docs/restart.md has the figures.
"""

from __future__ import annotations

import json
import time

import pytest

from .conftest import VIP, assert_round_robin, get_from_client, in_container, lab, must, site

# A threshold far above what these tests open, so round robin is not disturbed by it.
RS1 = {"address": "172.25.8.2", "upper_threshold": 1000, "lower_threshold": 500}
RS2 = {"address": "172.25.8.3"}
TIMEOUTS = {"tcp": 3600, "tcpfin": 60, "udp": 120}
EXTRA_VARS = {
    "director_services": [{"protocol": "tcp", "address": VIP, "port": 80, "scheduler": "rr", "reals": [RS1, RS2]}],
    "director_ipvs_timeouts": TIMEOUTS,
}
# How long the director may take, from `docker restart`, to have its table back.
RESTORE_TIMEOUT = 180


def director(script: str) -> str:
    return must(in_container("director", script))


def snapshot() -> dict[str, str]:
    """What a restart must keep: the saved rules, the thresholds, the timeouts, the VIP."""
    return {
        "save": director("ipvsadm -Sn"),
        "thresholds": director("ipvsadm -Ln --thresholds"),
        "timeouts": director("ipvsadm -L --timeout"),
        "vip": director(f"ip -o addr show dev eth0 to {VIP}"),
    }


def wait_for_systemd() -> str:
    """Wait until the director's systemd has finished booting; its state (running or degraded)."""
    deadline = time.monotonic() + RESTORE_TIMEOUT
    while time.monotonic() < deadline:
        state = in_container("director", "systemctl is-system-running --wait").stdout.strip()
        if state in ("running", "degraded"):
            return state
        time.sleep(1)
    pytest.fail(f"the director's systemd did not finish booting in {RESTORE_TIMEOUT}s")


@pytest.fixture(scope="module")
def restart(converged, lab_env: dict[str, str]) -> dict[str, object]:
    """The director's state before and after `docker restart director`, and how long the table
    took to come back."""
    _out, recap = site(lab_env, "--limit", "directors", "-e", json.dumps(EXTRA_VARS))
    before = snapshot()
    rules = director("cat /etc/ipvsadm.rules")
    started = time.monotonic()
    must(lab("run", "--", "docker", "restart", "director"))
    restarted = time.monotonic() - started
    state = wait_for_systemd()
    booted = time.monotonic() - started
    after = snapshot()
    return {
        "recap": recap["director"],
        "before": before,
        "after": after,
        "rules": rules,
        "state": state,
        "failed_units": director("systemctl --failed --no-legend --plain"),
        "seconds": {"docker restart": round(restarted, 1), "systemd up": round(booted, 1)},
    }


def test_the_role_run_with_a_threshold_saves_it(restart):
    # The ipvs_table task changed rs1, so its handler saved the table: ipvsadm-save's lines,
    # rs1's with the thresholds that ipvsadm-save leaves out.
    assert restart["recap"]["changed"] > 0, restart["recap"]
    expected = [
        line + (f" -x {RS1['upper_threshold']} -y {RS1['lower_threshold']}" if f" -r {RS1['address']}:" in line else "")
        for line in restart["before"]["save"].splitlines()
    ]
    assert restart["rules"].splitlines() == expected


def test_director_boots_clean(restart):
    assert restart["state"] == "running", f"{restart['state']}: {restart['failed_units']}"


def test_table_is_identical(restart):
    assert restart["after"]["save"] == restart["before"]["save"], restart


def test_thresholds_survive(restart):
    before = restart["before"]["thresholds"]
    assert "1000" in before and "500" in before, f"the threshold was not set: {before}"
    assert restart["after"]["thresholds"] == before


def test_timeouts_survive(restart):
    assert restart["before"]["timeouts"].split(":")[-1].split() == ["3600", "60", "120"], restart["before"]["timeouts"]
    assert restart["after"]["timeouts"] == restart["before"]["timeouts"]


def test_vip_is_bound_again(restart):
    assert VIP in restart["after"]["vip"], restart["after"]["vip"]


def test_client_sees_round_robin_again(restart):
    assert_round_robin(get_from_client(20, flush_neighbours=True), ["rs1", "rs2"])
