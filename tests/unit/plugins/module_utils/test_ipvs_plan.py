"""Unit tests of _ipvs_plan's planning: which writes, in which order, for a wanted table against
the kernel's (a dict here; the lab's integration tests use the real one)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.lvs.dr.plugins.module_utils import _ipvs_plan as ipvs_table
from ansible_collections.lvs.dr.plugins.module_utils._ipvs_spec import IPVSInputError, real_key, service_key

REAL_DEFAULTS = {
    "port": None,
    "forwarding_method": "dr",
    "tunnel_type": None,
    "tunnel_port": None,
    "tunnel_checksum": None,
    "weight": 1,
    "upper_threshold": 0,
    "lower_threshold": 0,
    "state": "present",
}
SERVICE_DEFAULTS = {
    "protocol": None,
    "port": None,
    "fwmark": None,
    "family": None,
    "scheduler": "rr",
    "persistent_timeout": 0,
    "persistent_netmask": None,
    "persistence_engine": None,
    "scheduler_flags": None,
    "one_packet": False,
    "state": "present",
    "reals": [],
}


def services(spec):
    """Module parameters from {port: [(last octet, weight[, state])], ...} on VIP 10.0.0.1."""
    return [
        {
            **SERVICE_DEFAULTS,
            "address": "10.0.0.1",
            "port": port,
            "reals": [{**REAL_DEFAULTS, "address": f"10.0.1.{r[0]}", "weight": r[1], "state": r[2] if len(r) > 2 else "present"} for r in reals],
        }
        for port, reals in spec.items()
    ]


def kernel(spec):
    """The kernel's table, as IPVSTable.read() gives it, for the same kind of SPEC."""
    out = {}
    for service, _state, reals in ipvs_table.wanted_table(services(spec)):
        out[service_key(service)] = (service, {real_key(r): r for r, _s in reals})
    return out


def plan(current, wanted, state="merged", protected=()):
    changes, drains = ipvs_table.plan_table(kernel(current), ipvs_table.wanted_table(services(wanted)), state, ipvs_table.protection(list(protected)))
    return [(c.action, c.service["port"], c.real["address"] if c.real else None, c.fields) for c in changes], [(s["port"], r["address"]) for s, r in drains]


SERVICE_FIELDS = (
    "family",
    "protocol",
    "address",
    "port",
    "fwmark",
    "scheduler",
    "persistent_timeout",
    "persistent_netmask",
    "persistence_engine",
    "scheduler_flags",
    "one_packet",
)
REAL_FIELDS = ("address", "port", "forwarding_method", "weight", "upper_threshold", "lower_threshold", "tunnel_type", "tunnel_port", "tunnel_checksum")


def test_nothing_to_do_is_no_write():
    table = {80: [(1, 1), (2, 1)], 81: [(1, 1)]}
    assert plan(table, table) == ([], [])


def test_one_weight_is_one_set():
    assert plan({80: [(1, 1), (2, 1)]}, {80: [(1, 1), (2, 5)]}) == ([("set", 80, "10.0.1.2", ["weight"])], [])


def test_order_is_real_deletes_service_deletes_services_then_reals():
    current = {80: [(1, 1), (2, 1)], 81: [(1, 1)]}
    wanted = {80: [(1, 1), (3, 1)], 82: [(1, 1)]}
    assert plan(current, wanted, "overridden")[0] == [
        ("delete", 80, "10.0.1.2", sorted(REAL_FIELDS)),
        ("delete", 81, None, sorted(SERVICE_FIELDS)),
        ("add", 82, None, sorted(SERVICE_FIELDS)),
        ("add", 80, "10.0.1.3", sorted(REAL_FIELDS)),
        ("add", 82, "10.0.1.1", sorted(REAL_FIELDS)),
    ]


@pytest.mark.parametrize(
    ("state", "deletes"),
    [
        ("merged", []),  # unlisted entries are left alone
        ("replaced", [("delete", 80, "10.0.1.2")]),  # a listed service's unlisted real server goes, not service 81
        ("overridden", [("delete", 80, "10.0.1.2"), ("delete", 81, None)]),
    ],
)
def test_what_each_state_removes(state, deletes):
    changes, _drains = plan({80: [(1, 1), (2, 1)], 81: [(1, 1)]}, {80: [(1, 1)]}, state)
    assert [c[:3] for c in changes] == deletes


def test_protected_services_survive_overridden():
    current = {80: [(1, 1)], 443: [(1, 1)], 8080: [(1, 1)]}
    changes, _drains = plan(current, {80: [(1, 1)]}, "overridden", protected=[{"address": "10.0.0.0/24", "port": 443}])
    assert changes == [("delete", 8080, None, sorted(SERVICE_FIELDS))]


def test_drained_goes_to_weight_zero_then_waits():
    assert plan({80: [(1, 1), (2, 3)]}, {80: [(1, 1), (2, 3, "drained")]}) == ([("set", 80, "10.0.1.2", ["weight"])], [(80, "10.0.1.2")])
    # already at weight 0: only the wait; already gone: nothing
    assert plan({80: [(1, 1), (2, 0)]}, {80: [(1, 1), (2, 0, "drained")]}) == ([], [(80, "10.0.1.2")])
    assert plan({80: [(1, 1)]}, {80: [(1, 1), (2, 1, "drained")]}) == ([], [])
    # the write itself sends weight 0 (the kernel's entry otherwise)
    changes, _drains = ipvs_table.plan_table(kernel({80: [(2, 3)]}), ipvs_table.wanted_table(services({80: [(2, 3, "drained")]})))
    assert [c.write[3]["weight"] for c in changes] == [0]


def test_gue_and_gre_are_refused_on_kernels_before_5_3(monkeypatch):
    # The lab's kernel has the tunnel types, so the refusal is shown here only.
    class Module:
        check_mode = False

        def fail_json(self, msg):
            raise AssertionError(msg)

    real = {"address": "10.0.1.2", "forwarding_method": "tunnel", "tunnel_type": "gre", "tunnel_checksum": "csum"}
    wanted = ipvs_table.wanted_table(services({80: []}))
    wanted[0][2].append((real, "present"))
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "h", "5.2.21", "#1", "x86_64")))
    with pytest.raises(
        AssertionError, match=r"tunnel_type: gre needs Linux 5.3 or later \(GUE came in 5.2, GRE and the checksums in 5.3\), and this kernel \(5.2.21\)"
    ):
        ipvs_table.check_writable(Module(), {}, wanted)
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "h", "5.10.0-30-amd64", "#1", "x86_64")))
    ipvs_table.check_writable(Module(), {}, wanted)


def test_absent_service_is_one_delete_whatever_its_reals():
    wanted = services({80: [(1, 1)]})
    wanted[0]["state"] = "absent"
    changes, _drains = ipvs_table.plan_table(kernel({80: [(1, 1), (2, 1)]}), ipvs_table.wanted_table(wanted), "merged", ipvs_table.protection([]))
    assert [(c.what, c.action) for c in changes] == [("service", "delete")]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([{**SERVICE_DEFAULTS, "address": "10.0.0.1", "port": 80}] * 2, "services[1] (tcp 10.0.0.1:80): listed twice, also as services[0]"),
        (services({80: [(1, 1), (1, 2)]}), "services[0] (tcp 10.0.0.1:80).reals[1]: 10.0.1.1:80 is listed twice, also as reals[0]"),
        (services({80: [(1, -1)]}), "services[0] (tcp 10.0.0.1:80).reals[0]: weight: -1 is out of range"),
        ([{**SERVICE_DEFAULTS, "address": "10.0.0.1", "port": 0}], "services[0]: port: 0 is out of range"),
    ],
)
def test_bad_entries_are_named(spec, message):
    with pytest.raises(IPVSInputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        ipvs_table.wanted_table(spec)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"address": None, "port": None, "protocol": None, "fwmark": None}, "protected[0]: empty"),
        ({"address": "10.0.0.0/33", "port": None, "protocol": None, "fwmark": None}, "protected[0].address: '10.0.0.0/33'"),
        ({"address": "10.0.0.1", "port": None, "protocol": None, "fwmark": 3}, "protected[0]: fwmark names a firewall-mark service"),
    ],
)
def test_bad_protected_entries_are_named(entry, message):
    with pytest.raises(IPVSInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ipvs_table.protection([entry])
