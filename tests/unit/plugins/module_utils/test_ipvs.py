"""Unit tests of _ipvs_spec, _ipvs_netlink and _ipvs_kernel: normalising, validating, diffing and the netlink encoding, with no
kernel and no root."""

from __future__ import annotations

import socket

import pytest
from pyroute2.netlink.generic.ipvs import ipvsmsg

from ansible_collections.lvs.dr.plugins.module_utils import _ipvs_kernel as kernel
from ansible_collections.lvs.dr.plugins.module_utils import _ipvs_netlink as nl
from ansible_collections.lvs.dr.plugins.module_utils import _ipvs_plan as plan
from ansible_collections.lvs.dr.plugins.module_utils import _ipvs_spec as ipvs

SEED = {"protocol": "tcp", "address": "172.25.8.100", "port": 80, "scheduler": "rr"}


def service(**params):
    return ipvs.want_service({**SEED, **params})


def real(params, **service_params):
    return ipvs.want_real(params, service(**service_params))


def test_seed_service_normalises_with_ipvsadm_defaults():
    assert ipvs.want_service({"address": "172.25.8.100", "port": 80}) == {
        "family": "ipv4",
        "protocol": "tcp",
        "address": "172.25.8.100",
        "port": 80,
        "fwmark": None,
        "scheduler": "wlc",
        "persistent_timeout": 0,
        "persistent_netmask": 32,
        "persistence_engine": None,
        "scheduler_flags": [],
        "one_packet": False,
    }


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"address": "2001:DB8:0::1", "port": 443}, ("ipv6", "tcp", "2001:db8::1", 443, None)),
        ({"address": " 172.25.8.100 ", "port": 80, "protocol": "udp"}, ("ipv4", "udp", "172.25.8.100", 80, None)),
        ({"fwmark": 10}, ("ipv4", None, None, None, 10)),
        ({"fwmark": 10, "family": "ipv6"}, ("ipv6", None, None, None, 10)),
    ],
)
def test_service_key(params, key):
    assert ipvs.service_key_from(params) == key


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"address": "172.25.8.300", "port": 80}, "address: '172.25.8.300' is not an IPv4 or IPv6 address"),
        ({"address": "vip; reboot", "port": 80}, "address: 'vip; reboot' is not"),
        ({"address": "172.25.8.100", "port": 0}, "port: 0 is out of range; use 1 to 65535"),
        ({"address": "172.25.8.100", "port": 65536}, "port: 65536 is out of range"),
        ({"fwmark": 0}, "fwmark: 0 is out of range"),
        ({"fwmark": 2**32}, "fwmark: 4294967296 is out of range"),
        ({"address": "172.25.8.100", "port": 80, "family": "ipv6"}, "family: ipv6 does not match address"),
    ],
)
def test_bad_service_key_names_the_option(params, message):
    with pytest.raises(ipvs.IPVSInputError, match="^" + message.split("'")[0]) as err:
        ipvs.service_key_from(params)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"scheduler": "rr", "scheduler_flags": ["sh-port"]}, "scheduler_flags: sh-port do not apply to scheduler rr"),
        ({"persistence_engine": "sip"}, "persistence_engine: a persistence engine needs a persistent service"),
        ({"one_packet": True}, "one_packet: one-packet scheduling applies to UDP"),
        ({"persistent_timeout": -1}, "persistent_timeout: -1 is out of range"),
        ({"persistent_timeout": 60, "persistent_netmask": "255.0.255.0"}, "persistent_netmask: '255.0.255.0' is not valid"),
        ({"persistent_timeout": 60, "persistent_netmask": "33"}, "persistent_netmask: '33' is not valid for an ipv4 service"),
    ],
)
def test_bad_service_options_name_the_option(params, message):
    with pytest.raises(ipvs.IPVSInputError) as err:
        service(**params)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("params", "prefix"),
    [
        ({"persistent_timeout": 60, "persistent_netmask": "255.255.255.0"}, 24),
        ({"persistent_timeout": 60, "persistent_netmask": "24"}, 24),
        ({"persistent_timeout": 60, "persistent_netmask": "/16"}, 16),
        ({"persistent_timeout": 60}, 32),
        ({"persistent_timeout": 0, "persistent_netmask": "24"}, 32),  # not persistent: the mask means nothing
        ({"persistent_timeout": 60, "persistent_netmask": "64", "address": "2001:db8::1"}, 64),
    ],
)
def test_persistent_netmask_becomes_a_prefix_length(params, prefix):
    assert service(**params)["persistent_netmask"] == prefix


def test_scheduler_flags_are_a_sorted_set():
    assert service(scheduler="sh", scheduler_flags=["sh-port", "sh-fallback", "sh-port"])["scheduler_flags"] == ["sh-fallback", "sh-port"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"address": "172.25.8.2"}, {"port": 80, "forwarding_method": "dr", "weight": 1}),
        ({"address": "172.25.8.2", "forwarding_method": "gatewaying"}, {"forwarding_method": "dr"}),
        ({"address": "172.25.8.2", "forwarding_method": "route"}, {"forwarding_method": "dr"}),
        ({"address": "172.25.8.2", "forwarding_method": "masquerading", "port": 8080}, {"forwarding_method": "nat", "port": 8080}),
        ({"address": "172.25.8.2", "weight": 0}, {"weight": 0}),
        ({"address": "172.25.8.2", "forwarding_method": "tunnel"}, {"tunnel_type": "ipip", "tunnel_port": None, "tunnel_checksum": None}),
        (
            {"address": "172.25.8.2", "forwarding_method": "tunnel", "tunnel_type": "gue", "tunnel_port": 6080},
            {"tunnel_type": "gue", "tunnel_port": 6080, "tunnel_checksum": "nocsum"},
        ),
    ],
)
def test_real_normalises(params, expected):
    got = real(params)
    assert {k: got[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"address": "172.25.8.2", "port": 8080}, "port: dr forwarding does no port mapping"),
        ({"address": "172.25.8.2", "port": 8080, "forwarding_method": "tunnel"}, "port: tunnel forwarding does no port mapping"),
        ({"address": "172.25.8.2", "tunnel_type": "gre"}, "tunnel_type: tunnel options need forwarding_method tunnel, not dr"),
        ({"address": "172.25.8.2", "tunnel_port": 6080, "forwarding_method": "nat"}, "tunnel_port: tunnel options need forwarding_method tunnel"),
        ({"address": "172.25.8.2", "forwarding_method": "tunnel", "tunnel_type": "gue"}, "tunnel_port: tunnel_type gue needs"),
        ({"address": "2001:db8::2"}, "address: 2001:db8::2 is ipv6 but the service is ipv4"),
        ({"address": "172.25.8.2", "weight": -1}, "weight: -1 is out of range"),
        ({"address": "172.25.8.2", "weight": 2**16}, "weight: 65536 is out of range"),
        ({"address": "172.25.8.2", "upper_threshold": 10, "lower_threshold": 20}, "lower_threshold: 20 is above upper_threshold 10"),
        ({"address": "172.25.8.2", "upper_threshold": -5}, "upper_threshold: -5 is out of range"),
        ({"address": "172.25.8.2", "port": 70000, "forwarding_method": "nat"}, "port: 70000 is out of range"),
    ],
)
def test_bad_real_options_name_the_option(params, message):
    with pytest.raises(ipvs.IPVSInputError) as err:
        real(params)
    assert message in str(err.value)


# What SaltStack's substring matching of `ipvsadm -S` gets wrong: these all differ.
@pytest.mark.parametrize(
    ("before", "after", "fields"),
    [
        (service(scheduler="lblc"), service(scheduler="lblcr"), ["scheduler"]),
        (real({"address": "172.25.8.2", "weight": 1}), real({"address": "172.25.8.2", "weight": 10}), ["weight"]),
        (real({"address": "172.25.8.2", "weight": 1}), real({"address": "172.25.8.2", "weight": 0}), ["weight"]),
        (service(), service(), []),
        (None, service(), sorted(service())),
    ],
)
def test_diff_compares_field_by_field(before, after, fields):
    assert plan.diff_entry(before, after) == fields


@pytest.mark.parametrize(
    ("before", "state", "action"),
    [
        (None, "present", "add"),
        (service(), "present", None),
        (service(scheduler="wlc"), "present", "set"),
        (service(), "absent", "delete"),
        (None, "absent", None),
    ],
)
def test_plan_is_one_write_and_never_delete_plus_add(before, state, action):
    assert plan.plan_entry(before, service(), state) == action


def _as_dumped(request):
    """A request's body read back the way a dump message is: (bytes, top-level attributes).
    The kernel's dump messages nest the service or destination the same way."""
    _command, body = request
    return body, nl.attrs(body, 0, len(body))


def _pyroute2_decoded(request):
    """The same request decoded by pyroute2's own IPVS message class: an independent reading."""
    command, body = request
    msg = ipvsmsg(bytes(nl._HDR.pack(20 + len(body), 28, 0, 1, 0)) + bytes((command, 1, 0, 0)) + body)
    msg.decode()
    return msg


SERVICES = [
    {},
    {"address": "2001:db8::1", "port": 443, "scheduler": "sh", "scheduler_flags": ["sh-port"], "persistent_timeout": 30, "persistent_netmask": "64"},
    {
        "protocol": "udp",
        "port": 5060,
        "scheduler": "mh",
        "scheduler_flags": ["mh-fallback", "mh-port"],
        "one_packet": True,
        "persistent_timeout": 60,
        "persistence_engine": "sip",
        "persistent_netmask": "255.255.0.0",
    },
]


@pytest.mark.parametrize("params", SERVICES)
def test_service_survives_netlink_encoding(params):
    want = service(**params)
    got, stats = nl.service_from_attributes(*_as_dumped(nl.requests([("service", "add", want, None)])[0]))
    assert got == want
    assert stats == {}


@pytest.mark.parametrize("params", SERVICES)
def test_pyroute2_reads_our_service_as_meant(params):
    want = service(**params)
    svc = _pyroute2_decoded(nl.requests([("service", "add", want, None)])[0]).get_attr("IPVS_CMD_ATTR_SERVICE")
    assert svc.get_attr("IPVS_SVC_ATTR_ADDR") == want["address"]
    assert svc.get_attr("IPVS_SVC_ATTR_PORT") == want["port"]
    assert svc.get_attr("IPVS_SVC_ATTR_SCHED_NAME") == want["scheduler"]
    assert svc.get_attr("IPVS_SVC_ATTR_TIMEOUT") == want["persistent_timeout"]
    assert svc.get_attr("IPVS_SVC_ATTR_PE_NAME") == want["persistence_engine"]
    assert bool(svc.get_attr("IPVS_SVC_ATTR_FLAGS")["flags"] & nl.SVC_F_ONEPACKET) == want["one_packet"]


def test_a_delete_names_the_service_only():
    command, body = nl.requests([("service", "delete", service(), None)])[0]
    a = nl.attrs(body, 4, len(body))
    assert command == nl.CMD_DEL_SERVICE
    assert sorted(a) == [nl.SVC_AF, nl.SVC_PROTOCOL, nl.SVC_ADDR, nl.SVC_PORT]


def test_fwmark_service_survives_netlink_encoding():
    want = ipvs.want_service({"fwmark": 7, "family": "ipv6", "scheduler": "rr"})
    got, _stats = nl.service_from_attributes(*_as_dumped(nl.requests([("service", "set", want, None)])[0]))
    assert got == want


REALS = [
    {"address": "172.25.8.2", "weight": 0, "upper_threshold": 100, "lower_threshold": 50},
    {"address": "172.25.8.2", "forwarding_method": "tunnel", "tunnel_type": "gue", "tunnel_port": 6080, "tunnel_checksum": "remcsum"},
    {"address": "172.25.8.2", "forwarding_method": "nat", "port": 8080},
    {"address": "2001:db8::2", "forwarding_method": "tunnel", "tunnel_type": "gre", "tunnel_checksum": "csum"},
]


def _real_back(want):
    """WANT through a NEW_DEST request and back: the real server and its counts."""
    body, top = _as_dumped(nl.requests([("real", "add", service(), want)])[0])
    return nl.real_from_attributes(body, top, socket.AF_INET)


@pytest.mark.parametrize("params", REALS)
def test_real_survives_netlink_encoding(params):
    want = real(params)
    got, counts = _real_back(want)
    assert got == want
    assert counts == {"active_connections": 0, "inactive_connections": 0, "persistent_connections": 0}


def test_kernel_entries_no_option_asks_for_are_written_back_as_read():
    # A drain sets weight 0 on the kernel's own entry: a local-node real server, or a tunnel with
    # both checksum bits (another tool's), must encode and read back unchanged.
    local = {**real({"address": "172.25.8.2"}), "forwarding_method": "local", "weight": 0}
    assert _real_back(local)[0] == local
    tunnel = real({"address": "172.25.8.2", "forwarding_method": "tunnel", "tunnel_type": "gre", "tunnel_checksum": "remcsum"})
    assert _real_back(tunnel)[0] == tunnel
    assert nl.checksum_name(3) == "remcsum" and nl.checksum_name(1) == "csum" and nl.checksum_name(0) == "nocsum"


@pytest.mark.parametrize("params", REALS)
def test_pyroute2_reads_our_real_as_meant(params):
    want = real(params)
    dest = _pyroute2_decoded(nl.requests([("real", "set", service(), want)])[0]).get_attr("IPVS_CMD_ATTR_DEST")
    assert dest.get_attr("IPVS_DEST_ATTR_PORT") == want["port"]
    assert dest.get_attr("IPVS_DEST_ATTR_WEIGHT") == want["weight"]
    assert dest.get_attr("IPVS_DEST_ATTR_FWD_METHOD") == nl.FORWARDING[want["forwarding_method"]]
    assert dest.get_attr("IPVS_DEST_ATTR_U_THRESH") == want["upper_threshold"]
    # pyroute2 declares the tunnel port host order; the kernel reads it big-endian
    assert socket.ntohs(dest.get_attr("IPVS_DEST_ATTR_TUN_PORT")) == (want["tunnel_port"] or 0)


def test_ipv4_mapped_ipv6_address_reads_back_as_ipaddress_writes_it():
    want = real({"address": "::ffff:10.0.0.1", "forwarding_method": "tunnel"})
    assert _real_back(want)[0]["address"] == "::ffff:a00:1" == want["address"]


def test_stats64_counters_are_read():
    inner = b"".join(nl.nla(n, nl.U64.pack(n * 1000)) for n in range(1, 6))
    body = nl.nla(nl.ATTR_SERVICE, nl.service_attributes(service()) + nl.nla(nl.SVC_STATS64, inner))
    _entry, stats = nl.service_from_attributes(body, nl.attrs(body, 0, len(body)), with_stats=True)
    assert stats == {"connections": 1000, "packets_in": 2000, "packets_out": 3000, "bytes_in": 4000, "bytes_out": 5000}


@pytest.mark.parametrize(
    ("key", "text"),
    [
        (("ipv4", "tcp", "172.25.8.100", 80, None), "tcp 172.25.8.100:80"),
        (("ipv6", "udp", "2001:db8::1", 53, None), "udp [2001:db8::1]:53"),
        (("ipv4", None, None, None, 10), "fwmark 10 (ipv4)"),
    ],
)
def test_describe_service(key, text):
    assert ipvs.describe_service(key) == text


def test_missing_pyroute2_names_the_version(monkeypatch):
    monkeypatch.setattr(kernel, "pyroute2", None)
    with pytest.raises(kernel.IPVSUnavailable) as err:
        kernel.check_pyroute2()
    assert err.value.missing_lib == "pyroute2>=0.9.5"


def test_debians_pyroute2_is_too_old(monkeypatch):
    monkeypatch.setattr(kernel.pyroute2, "__version__", "0.7.2")
    with pytest.raises(kernel.IPVSUnavailable, match=r"pyroute2 0\.7\.2 is too old: its IPVS API needs pyroute2>=0\.9\.5"):
        kernel.check_pyroute2()
