"""lvs.dr.ipvs_service against the kernel's IPVS table, each test in a namespace of its own."""

from __future__ import annotations

import pytest

from ..conftest import run
from .conftest import ipvs_table

SEED = {"protocol": "tcp", "address": "198.51.100.100", "port": 80, "scheduler": "rr"}


def test_create_then_nothing_to_do(netns, run_module):
    first = run_module("ipvs_service", SEED, netns=netns)
    assert first["changed"] and first["action"] == "add", first
    assert "-A -t 198.51.100.100:80 -s rr" in ipvs_table(netns)
    assert first["service"]["scheduler"] == "rr" and first["service"]["port"] == 80
    again = run_module("ipvs_service", SEED, netns=netns)
    assert not again["changed"] and again["action"] == "none", again
    assert again["service"] == first["service"]


def test_check_mode_changes_nothing(netns, run_module):
    before = ipvs_table(netns)
    result = run_module("ipvs_service", SEED, netns=netns, check=True, diff=True)
    assert result["changed"] and result["action"] == "add"
    assert result["diff"] == {"before": {}, "after": result["service"]}
    assert ipvs_table(netns) == before
    run_module("ipvs_service", SEED, netns=netns)
    before = ipvs_table(netns)
    result = run_module("ipvs_service", {**SEED, "scheduler": "wlc"}, netns=netns, check=True)
    assert result["changed"] and result["action"] == "set"
    assert ipvs_table(netns) == before


def test_change_is_in_place_and_diff_shows_fields(netns, run_module):
    run_module("ipvs_service", SEED, netns=netns)
    run("ip", "netns", "exec", netns, "ipvsadm", "-a", "-t", "198.51.100.100:80", "-r", "198.51.100.2:80", "-g")
    result = run_module("ipvs_service", {**SEED, "scheduler": "wrr", "persistent_timeout": 300}, netns=netns, diff=True)
    assert result["action"] == "set" and result["changed_fields"] == ["persistent_timeout", "scheduler"], result
    assert result["diff"]["before"]["scheduler"] == "rr" and result["diff"]["after"]["scheduler"] == "wrr"
    saved = ipvs_table(netns)
    assert "-A -t 198.51.100.100:80 -s wrr -p 300" in saved
    # A delete + add would have dropped the real server with the service.
    assert "-a -t 198.51.100.100:80 -r 198.51.100.2:80 -g -w 1" in saved


@pytest.mark.parametrize(
    ("params", "saved"),
    [
        ({"fwmark": 10, "scheduler": "sh", "scheduler_flags": ["sh-fallback", "sh-port"]}, "-A -f 10 -s sh -b sh-fallback,sh-port"),
        ({"fwmark": 11, "family": "ipv6", "scheduler": "rr"}, "-A -f 11 -6 -s rr"),
        ({"protocol": "udp", "address": "2001:db8::100", "port": 53, "scheduler": "lblcr"}, "-A -u [2001:db8::100]:53 -s lblcr"),
        ({"protocol": "sctp", "address": "198.51.100.100", "port": 3868, "scheduler": "lblc"}, "-A --sctp-service 198.51.100.100:3868 -s lblc"),
        (
            {"protocol": "udp", "address": "198.51.100.100", "port": 5060, "scheduler": "mh", "scheduler_flags": ["mh-port"], "one_packet": True},
            "-A -u 198.51.100.100:5060 -s mh -o -b mh-port",
        ),
        ({**SEED, "persistent_timeout": 600, "persistent_netmask": "255.255.255.0"}, "-A -t 198.51.100.100:80 -s rr -p 600 -M 255.255.255.0"),
        (
            {"protocol": "udp", "address": "198.51.100.100", "port": 5060, "scheduler": "rr", "persistent_timeout": 60, "persistence_engine": "sip"},
            "-A -u 198.51.100.100:5060 -s rr -p 60 --pe sip",
        ),
        (
            {"protocol": "tcp", "address": "2001:db8::100", "port": 443, "scheduler": "sed", "persistent_timeout": 30, "persistent_netmask": "64"},
            "-A -t [2001:db8::100]:443 -s sed -p 30 -M 64",
        ),
    ],
)
def test_every_kind_of_service_round_trips(netns, run_module, params, saved):
    first = run_module("ipvs_service", params, netns=netns)
    assert first["changed"], first
    assert saved in ipvs_table(netns)
    again = run_module("ipvs_service", params, netns=netns)
    assert not again["changed"], again


def test_absent_removes_and_is_idempotent(netns, run_module):
    run_module("ipvs_service", SEED, netns=netns)
    gone = run_module("ipvs_service", {**SEED, "state": "absent"}, netns=netns, diff=True)
    assert gone["changed"] and gone["action"] == "delete" and gone["service"] == {}
    assert gone["diff"]["after"] == {} and gone["diff"]["before"]["address"] == "198.51.100.100"
    assert "198.51.100.100" not in ipvs_table(netns)
    assert not run_module("ipvs_service", {**SEED, "state": "absent"}, netns=netns)["changed"]


def test_info_reads_what_the_modules_wrote(netns, run_module):
    run_module("ipvs_service", SEED, netns=netns)
    run_module("ipvs_real", {"service_address": "198.51.100.100", "service_port": 80, "address": "198.51.100.2", "weight": 0}, netns=netns)
    info = run_module("ipvs_info", {}, netns=netns)
    assert not info["changed"]
    [svc] = info["services"]
    assert {k: svc[k] for k in ("protocol", "address", "port", "scheduler")} == {"protocol": "tcp", "address": "198.51.100.100", "port": 80, "scheduler": "rr"}
    [real] = svc["reals"]
    assert real["address"] == "198.51.100.2" and real["weight"] == 0 and real["forwarding_method"] == "dr"
    assert real["active_connections"] == 0 and set(real["stats"]) >= {"connections", "packets_in", "bytes_out"}
