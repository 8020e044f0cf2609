"""A real server whose web server stops, on the converged lab (docs/robustness.md, "A real
server stops"). IPVS has no health checks: the stopped server's kernel answers the SYNs the
director forwards with a reset, and round robin goes on choosing it, so every other new
connection fails. `lvs.dr.ipvs_real state=absent` takes it out and every request is answered
again; once its web server is back, `state=present` puts it back into the rotation."""

from __future__ import annotations

import json

import pytest

from .conftest import VIP, ansible, assert_round_robin, get_from_client, in_container, must

RS2 = "172.25.8.3"
REQUESTS = 20


def ipvs_real(lab_env, state: str) -> None:
    """lvs.dr.ipvs_real on the director, ad hoc, with the venv the director role made."""
    args = {"service_address": VIP, "service_port": 80, "address": RS2, "forwarding_method": "dr", "state": state}
    argv = ("directors", "-i", "inventories/lab", "-m", "lvs.dr.ipvs_real", "-a", json.dumps(args))
    result = ansible(lab_env, "ansible", *argv, "-e", "ansible_python_interpreter=/opt/lvs-dr/venv/bin/python")
    assert result.returncode == 0 and '"changed": true' in result.stdout, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.fixture(scope="module")
def answers(converged, lab_env):
    """Who answered REQUESTS requests: with rs2's web server stopped, then with rs2 taken out,
    then with its web server started and rs2 put back."""
    seen = {}
    must(in_container("rs2", "systemctl stop apache2"))
    try:
        seen["stopped"] = get_from_client(REQUESTS, flush_neighbours=True)
        ipvs_real(lab_env, "absent")
        seen["taken out"] = get_from_client(REQUESTS)
    finally:
        must(in_container("rs2", "systemctl start apache2"))
    ipvs_real(lab_env, "present")
    seen["put back"] = get_from_client(REQUESTS)
    print(json.dumps(seen))
    return seen


def test_every_other_request_fails_while_its_web_server_is_stopped(answers):
    assert answers["stopped"].count("rs1") == REQUESTS // 2, answers["stopped"]
    assert answers["stopped"].count("FAILED") == REQUESTS // 2, answers["stopped"]


def test_every_request_is_answered_once_it_is_taken_out(answers):
    assert answers["taken out"] == ["rs1"] * REQUESTS


def test_round_robin_again_once_it_is_back(answers):
    assert_round_robin(answers["put back"], ["rs1", "rs2"])
