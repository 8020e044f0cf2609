"""Unit tests of the sync daemon's pure parts: normalising and checking ipvs_sync_daemon's options
(_ipvs_spec.want_daemon), deciding start, restart or stop (plan_daemon), and its netlink
messages (_ipvs_netlink), with no kernel and no root."""

from __future__ import annotations

import struct

import pytest

from ansible_collections.lvs.dr.plugins.module_utils import _ipvs_netlink as nl
from ansible_collections.lvs.dr.plugins.module_utils import _ipvs_spec as ipvs
from ansible_collections.lvs.dr.plugins.module_utils import _ipvs_sync as sync

MASTER = {"mode": "master", "state": "present", "interface": "eth1", "syncid": 10}
RUNNING = {"mode": "master", "interface": "eth1", "syncid": 10, "sync_maxlen": 1472, "mcast_group": "224.0.0.81", "mcast_port": 8848, "mcast_ttl": 1}


def test_left_out_options_take_the_kernels_defaults():
    assert ipvs.want_daemon(MASTER, mtu=9000) == RUNNING


@pytest.mark.parametrize(
    ("params", "mtu", "maxlen"),
    [
        ({**MASTER, "mode": "backup"}, 1500, 1472),
        ({**MASTER, "mode": "backup"}, 9000, 8972),
        ({**MASTER, "mode": "backup"}, 1280, 1472),  # the kernel's clamp: at least 1500
        ({**MASTER, "mode": "backup"}, 65536, 65507),  # lo: at most 65535
        ({**MASTER, "mode": "backup", "mcast_group": "ff02::81"}, 9000, 8952),
        ({**MASTER, "mcast_group": "ff02::81"}, 9000, 1452),
        ({**MASTER, "sync_maxlen": 1}, 1500, 1),
        ({**MASTER, "mode": "backup", "sync_maxlen": 1024}, 9000, 1024),
    ],
)
def test_sync_maxlen_is_what_the_kernel_would_pick(params, mtu, maxlen):
    assert ipvs.want_daemon(params, mtu=mtu)["sync_maxlen"] == maxlen


def test_given_options_are_normalised():
    want = ipvs.want_daemon({**MASTER, "mcast_group": " FF02:0::81 ", "mcast_port": 9000, "mcast_ttl": 3, "syncid": None}, mtu=1500)
    assert want == {**RUNNING, "syncid": 0, "mcast_group": "ff02::81", "mcast_port": 9000, "mcast_ttl": 3, "sync_maxlen": 1452}


def test_absent_takes_only_the_mode():
    assert ipvs.want_daemon({"mode": "backup", "state": "absent", "interface": "no such / name", "syncid": 999}) == {"mode": "backup"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({**MASTER, "interface": ""}, "interface: '' is not an interface name; use the name of an existing interface"),
        ({**MASTER, "interface": None}, "interface: '' is not an interface name"),
        ({**MASTER, "interface": "a-very-long-name0"}, "interface: 'a-very-long-name0' is not an interface name"),
        ({**MASTER, "interface": "eth1; reboot"}, "interface: 'eth1; reboot' is not an interface name"),
        ({**MASTER, "interface": "../eth1"}, "interface: '../eth1' is not an interface name"),
        ({**MASTER, "syncid": 256}, "syncid: 256 is out of range; use 0 (a backup takes every master's messages) to 255"),
        ({**MASTER, "syncid": -1}, "syncid: -1 is out of range; use 0"),
        ({**MASTER, "mcast_group": "198.51.100.1"}, "mcast_group: 198.51.100.1 is not a multicast address; use one of 224.0.0.0/4"),
        ({**MASTER, "mcast_group": "sync.example"}, "mcast_group: 'sync.example' is not an IPv4 or IPv6 address"),
        ({**MASTER, "mcast_port": 0}, "mcast_port: 0 is out of range; use 1 to 65535"),
        ({**MASTER, "mcast_port": 65536}, "mcast_port: 65536 is out of range; use 1 to 65535"),
        ({**MASTER, "mcast_ttl": 0}, "mcast_ttl: 0 is out of range; use 1 to 255"),
        ({**MASTER, "mcast_ttl": 256}, "mcast_ttl: 256 is out of range; use 1 to 255"),
        ({**MASTER, "sync_maxlen": 0}, "sync_maxlen: 0 is out of range for a master daemon with an ipv4 group; use 1 to 65507"),
        ({**MASTER, "mode": "backup", "sync_maxlen": 1000}, "sync_maxlen: 1000 is out of range for a backup daemon with an ipv4 group; use 1024 to 65507"),
        ({**MASTER, "sync_maxlen": 65500, "mcast_group": "ff02::81"}, "sync_maxlen: 65500 is out of range for a master daemon with an ipv6 group; use 1 to"),
    ],
)
def test_bad_options_name_the_option_and_the_fix(params, message):
    with pytest.raises(ipvs.IPVSInputError) as caught:
        ipvs.want_daemon(params, mtu=1500)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("before", "state", "action"),
    [
        (None, "present", "start"),
        (RUNNING, "present", None),
        ({**RUNNING, "syncid": 11}, "present", "restart"),
        ({**RUNNING, "interface": "eth2"}, "present", "restart"),
        ({**RUNNING, "mcast_port": 9000}, "present", "restart"),
        # a kernel before 4.3 reports none of these: not compared
        ({**RUNNING, "sync_maxlen": None, "mcast_group": None, "mcast_port": None, "mcast_ttl": None}, "present", None),
        (RUNNING, "absent", "stop"),
        (None, "absent", None),
    ],
)
def test_plan(before, state, action):
    want = RUNNING if state == "present" else {"mode": "master"}
    assert ipvs.plan_daemon(before, want, state) == action


def test_diff_names_the_fields_that_differ():
    assert ipvs.diff_daemon({**RUNNING, "syncid": 3, "mcast_ttl": 2}, RUNNING) == ["mcast_ttl", "syncid"]
    assert sync.changed_fields({**RUNNING, "syncid": 3}, RUNNING, "restart") == ["syncid"]
    assert sync.changed_fields(None, RUNNING, "start") == sorted(RUNNING)
    assert sync.changed_fields(RUNNING, RUNNING, None) == []


def parse(body):
    """The daemon a NEW_DAEMON body describes, read as the kernel's dump message."""
    return nl.daemon_from_attributes(body, nl.attrs(body, 0, len(body)))


@pytest.mark.parametrize(
    "daemon",
    [
        RUNNING,
        {**RUNNING, "mode": "backup", "interface": "bond0.12", "syncid": 255, "sync_maxlen": 8972, "mcast_port": 65535, "mcast_ttl": 255},
        {**RUNNING, "mcast_group": "ff02::81", "sync_maxlen": 1452},
    ],
)
def test_daemon_survives_netlink_encoding(daemon):
    command, body = nl.daemon_request(daemon, "add")
    assert command == nl.CMD_NEW_DAEMON
    assert parse(body) == daemon


def test_daemon_attributes_are_the_kernels():
    _command, body = nl.daemon_request({**RUNNING, "mcast_port": 9000}, "add")
    inner = nl.attrs(body, 4, len(body))
    # the port in host order (the kernel adds the thread number before htons), the group in network order
    assert struct.unpack_from("=H", body, inner[nl.DAEMON_MCAST_PORT][0])[0] == 9000
    assert body[inner[nl.DAEMON_MCAST_GROUP][0] : inner[nl.DAEMON_MCAST_GROUP][0] + 4] == bytes((224, 0, 0, 81))
    assert body[inner[nl.DAEMON_MCAST_IFN][0] :].startswith(b"eth1\0")
    assert struct.unpack_from("=I", body, inner[nl.DAEMON_STATE][0])[0] == 1


def test_stop_names_only_the_mode():
    command, body = nl.daemon_request({"mode": "backup"}, "delete")
    assert command == nl.CMD_DEL_DAEMON
    assert parse(body) == {"mode": "backup", "interface": None, "syncid": 0, "sync_maxlen": None, "mcast_group": None, "mcast_port": None, "mcast_ttl": None}
