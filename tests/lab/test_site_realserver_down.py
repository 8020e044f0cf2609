"""A real server's web server stops, on the converged lab (site.yml): what LVS alone does, and
what the collection offers (docs/robustness.md). IPVS has no health checks: round robin keeps
sending every other connection to the stopped server, and those fail. Taking it out with
lvs.dr.ipvs_real (the collection's answer until it has health checking) stops the failures;
putting it back restores round robin."""

from __future__ import annotations

import json

from .conftest import ansible, assert_round_robin, get_from_client, in_container, must

SERVICE = {"protocol": "tcp", "service_address": "172.25.8.100", "service_port": 80}


def ipvs_real(lab_env: dict[str, str], **args: str) -> dict:
    """lvs.dr.ipvs_real on the director, ad hoc, as an operator would run it; its result."""
    argv = ["director", "-i", "inventories/lab", "-m", "lvs.dr.ipvs_real", "-a", json.dumps({**SERVICE, **args})]
    result = ansible(
        {**lab_env, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"},
        "ansible",
        *argv,
        "-e",
        "ansible_python_interpreter=/opt/lvs-dr/venv/bin/python",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return json.loads(result.stdout)["plays"][0]["tasks"][0]["hosts"]["director"]


def test_lvs_keeps_sending_to_a_stopped_real_server_until_it_is_taken_out(converged, lab_env):
    must(in_container("rs2", "systemctl stop apache2"))
    try:
        answers = get_from_client(20)
        # Round robin still picks rs2 for every other connection, and rs2 refuses them.
        assert answers.count("rs1") == 10 and answers.count("FAILED") == 10, answers
        taken_out = ipvs_real(lab_env, address="172.25.8.3", state="absent")
        assert taken_out["changed"] and taken_out["action"] == "delete", taken_out
        assert get_from_client(20) == ["rs1"] * 20
    finally:
        must(in_container("rs2", "systemctl start apache2"))
        put_back = ipvs_real(lab_env, address="172.25.8.3")
    assert put_back["changed"] and put_back["action"] == "add", put_back
    assert_round_robin(get_from_client(20), ["rs1", "rs2"])
