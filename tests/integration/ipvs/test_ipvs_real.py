"""lvs.dr.ipvs_real against the kernel's IPVS table, and with real TCP through a
direct-routing network of namespaces (tests/integration/ipvs/conftest.py: dr_net)."""

from __future__ import annotations

import time

import pytest

from ..conftest import run
from .conftest import PORT, VIP, HeldConnection, ipvs_table

SERVICE = {"protocol": "tcp", "service_address": "198.51.100.100", "service_port": 80}
REAL = {**SERVICE, "address": "198.51.100.2"}


@pytest.fixture
def service(netns, run_module):
    assert run_module("ipvs_service", {"address": "198.51.100.100", "port": 80, "scheduler": "wrr"}, netns=netns)["changed"]
    return netns


def test_create_then_nothing_to_do(service, run_module):
    first = run_module("ipvs_real", REAL, netns=service)
    assert first["changed"] and first["action"] == "add", first
    assert "-a -t 198.51.100.100:80 -r 198.51.100.2:80 -g -w 1" in ipvs_table(service)
    assert first["real"]["forwarding_method"] == "dr" and first["real"]["port"] == 80
    again = run_module("ipvs_real", REAL, netns=service)
    assert not again["changed"], again


def test_weight_change_is_in_place_with_diff_and_check_mode(service, run_module):
    run_module("ipvs_real", REAL, netns=service)
    before = ipvs_table(service)
    checked = run_module("ipvs_real", {**REAL, "weight": 10}, netns=service, check=True, diff=True)
    assert checked["changed"] and checked["action"] == "set" and checked["changed_fields"] == ["weight"]
    assert checked["diff"]["before"]["weight"] == 1 and checked["diff"]["after"]["weight"] == 10
    assert ipvs_table(service) == before
    done = run_module("ipvs_real", {**REAL, "weight": 10}, netns=service)
    assert done["action"] == "set" and done["real"]["weight"] == 10
    assert "-r 198.51.100.2:80 -g -w 10" in ipvs_table(service)
    # Weight 0 quiesces; it is a value, not an absence.
    assert run_module("ipvs_real", {**REAL, "weight": 0}, netns=service)["real"]["weight"] == 0
    assert not run_module("ipvs_real", {**REAL, "weight": 0}, netns=service)["changed"]


@pytest.mark.parametrize(
    ("params", "saved"),
    [
        ({"address": "198.51.100.3", "forwarding_method": "gatewaying", "weight": 3}, "-r 198.51.100.3:80 -g -w 3"),
        ({"address": "198.51.100.3", "forwarding_method": "masquerading", "port": 8080}, "-r 198.51.100.3:8080 -m -w 1"),
        ({"address": "198.51.100.3", "forwarding_method": "tunnel"}, "-r 198.51.100.3:80 -i -w 1"),
        (
            {"address": "198.51.100.3", "forwarding_method": "tunnel", "tunnel_type": "gue", "tunnel_port": 6080, "tunnel_checksum": "csum"},
            "-r 198.51.100.3:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum",
        ),
        (
            {"address": "198.51.100.3", "forwarding_method": "tunnel", "tunnel_type": "gre", "tunnel_checksum": "remcsum"},
            "-r 198.51.100.3:80 -i -w 1 --tun-type gre --tun-remcsum",
        ),
    ],
)
def test_every_kind_of_real_round_trips(service, run_module, params, saved):
    first = run_module("ipvs_real", {**SERVICE, **params}, netns=service)
    assert first["changed"], first
    assert saved in ipvs_table(service)
    assert not run_module("ipvs_real", {**SERVICE, **params}, netns=service)["changed"]


def test_thresholds(service, run_module):
    params = {**SERVICE, "address": "198.51.100.3", "upper_threshold": 100, "lower_threshold": 50}
    assert run_module("ipvs_real", params, netns=service)["changed"]
    # ipvsadm -S does not save thresholds; its listing shows them.
    listing = run("ip", "netns", "exec", service, "ipvsadm", "-Ln", "--thresholds")
    assert ["->", "198.51.100.3:80", "100", "50", "0", "0"] in [line.split() for line in listing.splitlines()], listing
    assert not run_module("ipvs_real", params, netns=service)["changed"]
    assert run_module("ipvs_real", {**params, "lower_threshold": 0}, netns=service)["changed_fields"] == ["lower_threshold"]


def test_method_change_is_in_place(service, run_module):
    run_module("ipvs_real", REAL, netns=service)
    changed = run_module("ipvs_real", {**REAL, "forwarding_method": "tunnel", "tunnel_type": "gre"}, netns=service)
    assert changed["action"] == "set" and changed["real"]["forwarding_method"] == "tunnel" and changed["real"]["tunnel_type"] == "gre"


def test_fwmark_service_real(netns, run_module):
    run_module("ipvs_service", {"fwmark": 5, "scheduler": "rr"}, netns=netns)
    first = run_module("ipvs_real", {"fwmark": 5, "address": "198.51.100.2"}, netns=netns)
    assert first["changed"] and first["real"]["port"] == 0
    assert "-a -f 5 -r 198.51.100.2:0 -g -w 1" in ipvs_table(netns)
    assert not run_module("ipvs_real", {"fwmark": 5, "address": "198.51.100.2"}, netns=netns)["changed"]


def test_absent_removes(service, run_module):
    run_module("ipvs_real", REAL, netns=service)
    gone = run_module("ipvs_real", {**REAL, "state": "absent"}, netns=service)
    assert gone["changed"] and gone["action"] == "delete" and gone["real"] == {}
    assert "198.51.100.2" not in ipvs_table(service)
    assert not run_module("ipvs_real", {**REAL, "state": "absent"}, netns=service)["changed"]


# --- with real traffic: a direct-routing network of namespaces ---------------------------


DR_SERVICE = {"protocol": "tcp", "service_address": VIP, "service_port": PORT}


@pytest.fixture
def balanced(dr_net, run_module):
    director = dr_net["director"]
    assert run_module("ipvs_service", {"address": VIP, "port": PORT, "scheduler": "rr"}, netns=director)["changed"]
    assert run_module("ipvs_real", {**DR_SERVICE, "address": "198.51.100.2"}, netns=director)["changed"]
    # A reset connection lingers as inactive for the CLOSE timeout (10 s); FIN ones for longer.
    conn = HeldConnection(dr_net["client"])
    yield dr_net, conn
    conn.close()


def test_connection_survives_in_place_changes(balanced, run_module):
    dr_net, conn = balanced
    director = dr_net["director"]
    assert conn.send("before") == "rs:before"
    assert run_module("ipvs_real", {**DR_SERVICE, "address": "198.51.100.2", "weight": 5, "upper_threshold": 1000}, netns=director)["action"] == "set"
    assert run_module("ipvs_service", {"address": VIP, "port": PORT, "scheduler": "wlc", "persistent_timeout": 60}, netns=director)["action"] == "set"
    assert conn.send("after") == "rs:after"
    # The counters run on: a delete + add would have started them again from zero, and they
    # would stay there. The kernel publishes them every 2 s: read until they show, 5 s at most.
    deadline = time.monotonic() + 5
    while True:
        [real] = run_module("ipvs_info", {}, netns=director)["services"][0]["reals"]
        if real["stats"]["connections"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert real["active_connections"] == 1 and real["stats"]["connections"] >= 1 and real["weight"] == 5


def test_drained_waits_for_connections_then_removes(balanced, run_module):
    dr_net, conn = balanced
    director = dr_net["director"]
    assert conn.send("held") == "rs:held"
    timed_out = run_module("ipvs_real", {**DR_SERVICE, "address": "198.51.100.2", "state": "drained", "drain_timeout": 2}, netns=director)
    assert timed_out["rc"] != 0 and timed_out["failed"]
    assert "(1 active, 0 inactive connections): left in the table at weight 0" in timed_out["msg"], timed_out["msg"]
    assert timed_out["drained"][0]["removed"] is False and timed_out["drained"][0]["active_connections"] == 1
    assert "-r 198.51.100.2:8080 -g -w 0" in ipvs_table(director)
    # Quiesced, not cut: the held connection still works.
    assert conn.send("still") == "rs:still"
    conn.reset()
    drained = run_module("ipvs_real", {**DR_SERVICE, "address": "198.51.100.2", "state": "drained", "drain_timeout": 60}, netns=director)
    assert drained["changed"] and drained["drained"][0]["removed"] is True and drained["drained"][0]["waited"] > 0, drained
    assert "198.51.100.2" not in ipvs_table(director)
    assert not run_module("ipvs_real", {**DR_SERVICE, "address": "198.51.100.2", "state": "drained"}, netns=director)["changed"]


def test_drained_in_check_mode_changes_nothing(balanced, run_module):
    dr_net, _conn = balanced
    before = ipvs_table(dr_net["director"])
    result = run_module("ipvs_real", {**DR_SERVICE, "address": "198.51.100.2", "state": "drained"}, netns=dr_net["director"], check=True)
    assert result["changed"] and result["action"] == "delete"
    assert ipvs_table(dr_net["director"]) == before
