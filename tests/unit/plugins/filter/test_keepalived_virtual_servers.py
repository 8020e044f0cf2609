"""Unit tests of the keepalived mode's filter: director_services as keepalived's virtual_server
blocks. keepalived itself reads them in molecule/ha (keepalived -t, then the running pair)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.lvs.dr.plugins.filter.keepalived_virtual_servers import keepalived_virtual_servers

CHECK = {"type": "tcp", "delay_loop": 2, "connect_timeout": 1, "retry": 1, "delay_before_retry": 1}


def service(**over):
    return {
        "protocol": "tcp",
        "address": "10.9.0.100",
        "port": 80,
        "scheduler": "rr",
        "reals": [{"address": "10.9.0.2"}, {"address": "10.9.0.3"}],
        "check": CHECK,
        **over,
    }


def test_a_service_with_an_http_check_and_a_drained_real_server() -> None:
    text = keepalived_virtual_servers([service(check={**CHECK, "type": "http", "path": "/health", "status": 204})], drained=["10.9.0.3"])
    assert text.startswith("virtual_server 10.9.0.100 80 {\n    protocol TCP\n    lvs_sched rr\n    delay_loop 2\n")
    assert "    real_server 10.9.0.2 80 {\n        weight 1\n        lvs_method DR\n        HTTP_GET {\n" in text
    assert "                path /health\n                status_code 204\n" in text
    assert "    real_server 10.9.0.3 80 {\n        weight 0\n" in text


def test_absent_entries_are_left_out_and_none_has_no_checker() -> None:
    reals = [{"address": "10.9.0.2"}, {"address": "10.9.0.3", "state": "absent"}]
    text = keepalived_virtual_servers([service(reals=reals, check={"type": "none"}), service(port=443, state="absent")])
    assert "10.9.0.3" not in text and " 443 " not in text
    assert "_CHECK" not in text and "HTTP_GET" not in text and "delay_loop" not in text


def test_fwmark_tunnel_persistence_and_flags() -> None:
    svc = {
        "fwmark": 7,
        "scheduler": "sh",
        "scheduler_flags": ["sh-port"],
        "persistent_timeout": 300,
        "persistent_netmask": "255.255.255.0",
        "reals": [{"address": "10.0.0.1", "forwarding_method": "tunnel", "tunnel_type": "gue", "tunnel_port": 6080}],
        "check": {**CHECK, "port": 80},
    }
    text = keepalived_virtual_servers([svc])
    for line in (
        "virtual_server fwmark 7 {",
        "    sh-port",
        "    persistence_timeout 300",
        "    persistence_granularity 255.255.255.0",
        "        lvs_method TUN type gue port 6080 nocsum",
        "            connect_port 80",
    ):
        assert f"{line}\n" in text


@pytest.mark.parametrize(
    ("svc", "message"),
    [
        ({"fwmark": 7, "reals": [{"address": "10.0.0.1"}], "check": CHECK}, "check of a firewall-mark service needs check.port"),
        (service(reals=[{"address": "10.9.0.2", "state": "drained"}]), "no real server would have a weight above 0"),
        (service(check={**CHECK, "type": "ping"}), "check.type must be one of tcp, http, none"),
        (service(check={**CHECK, "url": "/"}), "remove url"),
        (service(check={**CHECK, "type": "http", "path": "no-slash"}), "check.path must be a URL path"),
        (service(check={**CHECK, "type": "http", "status": 999}), "check.status must be an HTTP status code"),
        (service(check={**CHECK, "delay_loop": 0}), "check.delay_loop must be a number of at least"),
        (service(scheduler="bogus"), "director_services"),
        (service(reals=[{"address": "10.9.0.2", "port": 8080}]), "no port mapping"),
    ],
)
def test_what_keepalived_or_ipvs_would_refuse_names_the_service(svc: dict, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message) as e:
        keepalived_virtual_servers([svc])
    assert str(e.value).startswith("director_services")
