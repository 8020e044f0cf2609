# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The kernel's IPVS table as plain dicts: read it over generic netlink (_ipvs_netlink), normalise
module parameters into the same shape, diff, apply.

PRIVATE to the collection: not a public API, it may change without notice.

One normalised entry shape serves both sides, so equal dicts mean nothing to do:

- service: family, protocol, address, port, fwmark, scheduler, persistent_timeout,
  persistent_netmask (a prefix length), persistence_engine, scheduler_flags, one_packet;
- real: address, port, forwarding_method, weight, upper_threshold, lower_threshold,
  tunnel_type, tunnel_port, tunnel_checksum.

Changes are netlink SET in place, never delete + add, so connections survive them.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import sys
import time
import traceback

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.compat.version import LooseVersion

from ansible_collections.lvs.dr.plugins.module_utils import _ipvs_netlink as nl

PYROUTE2_MIN = "0.9.5"
try:
    import pyroute2

    HAS_PYROUTE2 = True
    PYROUTE2_IMP_ERR = None
except ImportError:
    HAS_PYROUTE2 = False
    PYROUTE2_IMP_ERR = traceback.format_exc()
try:
    from pyroute2 import IPVS
except ImportError:  # a pyroute2 from before its IPVS API (Debian 12's 0.7.2): check_pyroute2 names its version
    IPVS = None
    if HAS_PYROUTE2:
        PYROUTE2_IMP_ERR = traceback.format_exc()

PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "sctp": 132}
FAMILIES = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos")
PERSISTENCE_ENGINES = ("sip",)
# The kernel's IP_VS_SVC_F_* bits. SCHED1/2 mean fallback/port for sh and mh alike.
SVC_F_PERSISTENT = 0x1
SVC_F_HASHED = 0x2
SVC_F_ONEPACKET = 0x4
SCHEDULER_FLAGS = {"sh-fallback": 0x8, "sh-port": 0x10, "mh-fallback": 0x8, "mh-port": 0x10}
# The kernel's IP_VS_CONN_F_* forwarding methods, and the names users know them by.
FORWARDING_METHODS = {"nat": 0, "tunnel": 2, "dr": 3}
FORWARDING_ALIASES = {"gatewaying": "dr", "route": "dr", "droute": "dr", "masquerading": "nat", "masq": "nat", "ipip": "tunnel"}
TUNNEL_TYPES = {"ipip": 0, "gue": 1, "gre": 2}
TUNNEL_CHECKSUMS = {"nocsum": 0, "csum": 1, "remcsum": 2}
U16_MAX = 0xFFFF
U32_MAX = 0xFFFFFFFF
WEIGHT_MAX = 0x7FFFFFFF  # the kernel refuses negative weights as INT_MAX + 1 and up


class IPVSInputError(ValueError):
    """A parameter the kernel must never see; the message names the option and the fix."""


def check_pyroute2(module):
    """Fail the module unless a pyroute2 with a usable IPVS API can be imported."""
    if not HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib(f"pyroute2>={PYROUTE2_MIN}"), exception=PYROUTE2_IMP_ERR)
    version = getattr(pyroute2, "__version__", "0")
    if LooseVersion(version) < LooseVersion(PYROUTE2_MIN) or IPVS is None:
        module.fail_json(
            msg=f"pyroute2 {version} is too old: its IPVS API needs pyroute2>={PYROUTE2_MIN} (Debian 12 ships 0.7.2); "
            f"upgrade the one in {os.path.dirname(pyroute2.__file__ or '?')} for the Python that runs this module: "
            f"{sys.executable} -m pip install 'pyroute2>={PYROUTE2_MIN}'",
            exception=PYROUTE2_IMP_ERR,
        )


# --- normalising parameters ---------------------------------------------------------------


def normalise_address(value, option):
    try:
        return ipaddress.ip_address(str(value).strip()).compressed
    except ValueError:
        raise IPVSInputError(f"{option}: '{value}' is not an IPv4 or IPv6 address") from None


def family_of(address):
    return "ipv6" if ":" in address else "ipv4"


def check_port(value, option, allow_zero=False):
    if value is None:
        return None
    low = 0 if allow_zero else 1
    if not low <= value <= U16_MAX:
        raise IPVSInputError(f"{option}: {value} is out of range; a port is {low} to {U16_MAX}")
    return value


def normalise_netmask(value, family, persistent):
    """persistent_netmask as a prefix length: IPv4 takes a netmask or a length, IPv6 a length."""
    full = 32 if family == "ipv4" else 128
    if value is None or not persistent:
        return full
    text = str(value).strip().lstrip("/")
    try:
        if family == "ipv4" and "." in text:
            return ipaddress.ip_network(f"0.0.0.0/{text}").prefixlen
        prefix = int(text)
    except ValueError:
        prefix = -1
    if not 1 <= prefix <= full:
        allowed = "a netmask such as 255.255.255.0 or a prefix length 1-32" if family == "ipv4" else "a prefix length 1-128"
        raise IPVSInputError(f"persistent_netmask: '{value}' is not valid for an {family} service; use {allowed}")
    return prefix


def service_identity_options(prefix=""):
    """The AnsibleModule arguments that name a service, for ipvs_service (prefix "") and
    ipvs_real (prefix "service_"): the options and how they combine."""
    address, port = f"{prefix}address", f"{prefix}port"
    return dict(
        argument_spec={
            "protocol": dict(type="str", choices=["tcp", "udp", "sctp"]),
            address: dict(type="str", aliases=["vip"]),
            port: dict(type="int"),
            "fwmark": dict(type="int"),
            "family": dict(type="str", choices=["ipv4", "ipv6"]),
        },
        required_one_of=[(address, "fwmark")],
        mutually_exclusive=[("fwmark", address), ("fwmark", port), ("fwmark", "protocol")],
        required_together=[(address, port)],
    )


def service_options():
    """The options that describe a service besides its identity, with its state: ipvs_service's,
    and those of each of ipvs_table's services."""
    return dict(
        scheduler=dict(type="str", choices=list(SCHEDULERS), default="wlc"),
        persistent_timeout=dict(type="int", default=0),
        persistent_netmask=dict(type="str"),
        persistence_engine=dict(type="str", choices=list(PERSISTENCE_ENGINES)),
        scheduler_flags=dict(type="list", elements="str", choices=["sh-fallback", "sh-port", "mh-fallback", "mh-port"]),
        one_packet=dict(type="bool", default=False),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )


def real_options():
    """The options that describe a real server, with its state: ipvs_real's, and those of each of
    ipvs_table's reals."""
    return dict(
        address=dict(type="str", required=True, aliases=["rip"]),
        port=dict(type="int"),
        forwarding_method=dict(type="str", choices=["dr", "gatewaying", "route", "nat", "masquerading", "tunnel"], default="dr"),
        tunnel_type=dict(type="str", choices=list(TUNNEL_TYPES)),
        tunnel_port=dict(type="int"),
        tunnel_checksum=dict(type="str", choices=list(TUNNEL_CHECKSUMS)),
        weight=dict(type="int", default=1),
        upper_threshold=dict(type="int", default=0),
        lower_threshold=dict(type="int", default=0),
        state=dict(type="str", choices=["present", "absent", "drained"], default="present"),
    )


def service_key_from(params, prefix=""):
    """The identity of a service, from ipvs_service's options (prefix "") or ipvs_real's
    (prefix "service_"): (family, protocol, address, port, fwmark)."""
    fwmark = params.get("fwmark")
    address = params.get(f"{prefix}address")
    if fwmark is not None:
        if not 1 <= fwmark <= U32_MAX:
            raise IPVSInputError(f"fwmark: {fwmark} is out of range; a firewall mark is 1 to {U32_MAX}")
        return (params.get("family") or "ipv4", None, None, None, fwmark)
    address = normalise_address(address, f"{prefix}address")
    if params.get("family") and params["family"] != family_of(address):
        raise IPVSInputError(f"family: {params['family']} does not match {prefix}address {address} ({family_of(address)})")
    port = check_port(params.get(f"{prefix}port"), f"{prefix}port")
    return (family_of(address), params.get("protocol") or "tcp", address, port, None)


def describe_service(key):
    """A service key as people write it: tcp 172.25.8.100:80, udp [2001:db8::1]:53, fwmark 10 (ipv4)."""
    family, protocol, address, port, fwmark = key
    if fwmark is not None:
        return f"fwmark {fwmark} ({family})"
    return f"{protocol} [{address}]:{port}" if family == "ipv6" else f"{protocol} {address}:{port}"


def key_fields(key):
    return dict(zip(("family", "protocol", "address", "port", "fwmark"), key, strict=True))


def want_service(params):
    """The service as ipvs_service's parameters describe it, normalised."""
    key = service_key_from(params)
    family, protocol = key[0], key[1]
    scheduler = params.get("scheduler") or "wlc"
    timeout = params.get("persistent_timeout") or 0
    if not 0 <= timeout <= U32_MAX:
        raise IPVSInputError(f"persistent_timeout: {timeout} is out of range; use 0 (not persistent) to {U32_MAX} seconds")
    flags = sorted(set(params.get("scheduler_flags") or []))
    wrong = [f for f in flags if not f.startswith(f"{scheduler}-")]
    if wrong:
        raise IPVSInputError(f"scheduler_flags: {', '.join(wrong)} do not apply to scheduler {scheduler}; sh-* go with scheduler sh, mh-* with mh")
    engine = params.get("persistence_engine")
    if engine and not timeout:
        raise IPVSInputError("persistence_engine: a persistence engine needs a persistent service; set persistent_timeout too")
    one_packet = bool(params.get("one_packet"))
    if one_packet and protocol not in ("udp", None):
        raise IPVSInputError(f"one_packet: one-packet scheduling applies to UDP (or fwmark) services, not {protocol}")
    return {
        **key_fields(key),
        "scheduler": scheduler,
        "persistent_timeout": timeout,
        "persistent_netmask": normalise_netmask(params.get("persistent_netmask"), family, timeout > 0),
        "persistence_engine": engine or None,
        "scheduler_flags": flags,
        "one_packet": one_packet,
    }


def want_real(params, service):
    """The real server as ipvs_real's parameters describe it, normalised; SERVICE is the
    normalised service it belongs to."""
    method = FORWARDING_ALIASES.get(params.get("forwarding_method") or "dr", params.get("forwarding_method") or "dr")
    address = normalise_address(params.get("address"), "address")
    tunnel = {k: params.get(k) for k in ("tunnel_type", "tunnel_port", "tunnel_checksum")}
    if method != "tunnel" and any(v is not None for v in tunnel.values()):
        given = ", ".join(k for k, v in tunnel.items() if v is not None)
        raise IPVSInputError(f"{given}: tunnel options need forwarding_method tunnel, not {method}")
    if family_of(address) != service["family"] and method != "tunnel":
        raise IPVSInputError(
            f"address: {address} is {family_of(address)} but the service is {service['family']}; only forwarding_method tunnel can mix families"
        )
    port = check_port(params.get("port"), "port", allow_zero=service["fwmark"] is not None)
    if port is None:
        port = service["port"] or 0
    if method in ("dr", "tunnel") and service["port"] is not None and port != service["port"]:
        raise IPVSInputError(
            f"port: {method} forwarding does no port mapping, so the real server port must be the service port "
            f"{service['port']}, not {port}; use forwarding_method nat to map ports"
        )
    if method == "tunnel":
        tunnel_type = tunnel["tunnel_type"] or "ipip"
        if tunnel_type == "ipip" and (tunnel["tunnel_port"] is not None or tunnel["tunnel_checksum"] is not None):
            raise IPVSInputError("tunnel_port, tunnel_checksum: they apply to tunnel_type gue and gre (tunnel_port to gue only), not ipip")
        if tunnel_type == "gue" and not tunnel["tunnel_port"]:
            raise IPVSInputError("tunnel_port: tunnel_type gue needs the UDP port of the real server's GUE receiver")
        if tunnel_type == "gre" and tunnel["tunnel_port"] is not None:
            raise IPVSInputError("tunnel_port: applies to tunnel_type gue only, not gre")
        tunnel = {
            "tunnel_type": tunnel_type,
            "tunnel_port": check_port(tunnel["tunnel_port"], "tunnel_port") if tunnel_type == "gue" else None,
            "tunnel_checksum": (tunnel["tunnel_checksum"] or "nocsum") if tunnel_type != "ipip" else None,
        }
    weight = 1 if params.get("weight") is None else params["weight"]
    if not 0 <= weight <= WEIGHT_MAX:
        raise IPVSInputError(f"weight: {weight} is out of range; use 0 (quiesce) to {WEIGHT_MAX}")
    upper, lower = params.get("upper_threshold") or 0, params.get("lower_threshold") or 0
    for name, value in (("upper_threshold", upper), ("lower_threshold", lower)):
        if not 0 <= value <= U32_MAX:
            raise IPVSInputError(f"{name}: {value} is out of range; use 0 (no threshold) to {U32_MAX} connections")
    if upper and lower > upper:
        raise IPVSInputError(f"lower_threshold: {lower} is above upper_threshold {upper}; it must be lower")
    return {"address": address, "port": port, "forwarding_method": method, "weight": weight, "upper_threshold": upper, "lower_threshold": lower, **tunnel}


# --- diffing --------------------------------------------------------------------------------


def check_drain_timeout(seconds):
    if seconds < 0:
        raise IPVSInputError(f"drain_timeout: {seconds} is out of range; use 0 (remove only if no connections are left) or more seconds")


def diff_entry(before, after):
    """The fields whose values differ; a missing side differs in every field."""
    if not before or not after:
        return sorted(set(before or {}) | set(after or {}))
    return sorted(k for k in after if before.get(k) != after[k])


def plan_entry(before, want, state):
    """add, set, delete or None: the one write that takes BEFORE to the wanted state."""
    if state == "absent":
        return "delete" if before else None
    if not before:
        return "add"
    return "set" if diff_entry(before, want) else None


def converge_entry(module, what, state, before, want, apply, read_back):
    """Plan, apply (unless in check mode) and report one WHAT (service or real) entry for STATE
    (present or absent): the module result's common part, with "entry" the entry as the kernel
    has it after the run (or would have). APPLY(action, entry) returns the kernel's errno (0 for
    done). When the write loses a race with another run (lost_race), the entry is read again and
    planned once more: what the other run did is not reported as this run's change."""
    for attempt in range(2):
        action = plan_entry(before, want, state)
        if not action or module.check_mode:
            break
        code = apply(action, before if action == "delete" else want)
        if not code:
            break
        if attempt or not lost_race(what, action, code):
            module.fail_json(msg=explain_netlink_error(what, action, code), errno=code)
        before = read_back()
    after = before if action is None else (None if action == "delete" else want)
    if action and not module.check_mode:
        after = read_back()
    result = {
        "changed": action is not None,
        "action": action or "none",
        "changed_fields": diff_entry(before, None if state == "absent" else want) if action else [],
        "entry": after or {},
    }
    if module._diff:
        result["diff"] = {"before": before or {}, "after": after or {}}
    return result


# --- the kernel's messages and the normalised entries -----------------------------------------

_PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}
_FORWARDING_NAMES = {v: k for k, v in FORWARDING_METHODS.items()}
_TUNNEL_NAMES = {v: k for k, v in TUNNEL_TYPES.items()}
_CHECKSUM_NAMES = {v: k for k, v in TUNNEL_CHECKSUMS.items()}
_FULL_PREFIX = {"ipv4": 32, "ipv6": 128}


def service_from_attributes(buf, top, with_stats=False):
    """A normalised service, and its traffic counters (WITH_STATS, else {}), from one message of
    a service dump (TOP: its top-level attributes)."""
    off, size = top[nl.ATTR_SERVICE]
    a = nl.attrs(buf, off, off + size)
    af = nl.u16(buf, a, nl.SVC_AF)
    family = "ipv6" if af == socket.AF_INET6 else "ipv4"
    fwmark = nl.u32(buf, a, nl.SVC_FWMARK) or None
    flags = nl.u32(buf, a, nl.SVC_FLAGS)  # struct ip_vs_flags: the flags, then the mask
    scheduler = nl.cstring(buf, a, nl.SVC_SCHED)
    timeout = nl.u32(buf, a, nl.SVC_TIMEOUT) if flags & SVC_F_PERSISTENT else 0
    prefix = _FULL_PREFIX[family]
    if timeout and nl.SVC_NETMASK in a:
        # IPv4: the netmask in network order; IPv6: a host-order prefix length in the same 4 bytes
        raw = nl.BE32.unpack_from(buf, a[nl.SVC_NETMASK][0])[0]
        prefix = bin(raw).count("1") if family == "ipv4" else nl.u32(buf, a, nl.SVC_NETMASK)
    entry = {
        "family": family,
        "protocol": None if fwmark else _PROTOCOL_NAMES.get(nl.u16(buf, a, nl.SVC_PROTOCOL)),
        "address": None if fwmark else nl.address(af, buf, a[nl.SVC_ADDR][0]),
        "port": None if fwmark else nl.be16(buf, a, nl.SVC_PORT),
        "fwmark": fwmark,
        "scheduler": scheduler,
        "persistent_timeout": timeout,
        "persistent_netmask": prefix,
        "persistence_engine": nl.cstring(buf, a, nl.SVC_PE),
        "scheduler_flags": sorted(n for n, bit in SCHEDULER_FLAGS.items() if flags & bit and n.startswith(f"{scheduler}-")),
        "one_packet": bool(flags & SVC_F_ONEPACKET),
    }
    return entry, nl.stats(buf, a, nl.SVC_STATS64, nl.SVC_STATS) if with_stats else {}


def real_from_attributes(buf, top, service_af, with_stats=False):
    """A normalised real server, and its connection counts (plus its traffic counters WITH_STATS),
    from one message of a destination dump of a service of address family SERVICE_AF."""
    off, size = top[nl.ATTR_DEST]
    a = nl.attrs(buf, off, off + size)
    af = nl.u16(buf, a, nl.DEST_AF) or service_af  # kernels before 3.18 do not send it
    method = _FORWARDING_NAMES.get(nl.u32(buf, a, nl.DEST_FWD) & 0x7, "local")
    tunnel = {"tunnel_type": None, "tunnel_port": None, "tunnel_checksum": None}
    if method == "tunnel":
        tunnel_type = _TUNNEL_NAMES.get(buf[a[nl.DEST_TUN_TYPE][0]] if nl.DEST_TUN_TYPE in a else 0)
        tunnel = {
            "tunnel_type": tunnel_type,
            "tunnel_port": nl.be16(buf, a, nl.DEST_TUN_PORT) if tunnel_type == "gue" else None,
            "tunnel_checksum": _CHECKSUM_NAMES.get(nl.u16(buf, a, nl.DEST_TUN_FLAGS), "nocsum") if tunnel_type != "ipip" else None,
        }
    entry = {
        "address": nl.address(af, buf, a[nl.DEST_ADDR][0]),
        "port": nl.be16(buf, a, nl.DEST_PORT),
        "forwarding_method": method,
        "weight": nl.u32(buf, a, nl.DEST_WEIGHT),
        "upper_threshold": nl.u32(buf, a, nl.DEST_U_THRESH),
        "lower_threshold": nl.u32(buf, a, nl.DEST_L_THRESH),
        **tunnel,
    }
    counts = {
        "active_connections": nl.u32(buf, a, nl.DEST_ACTIVE),
        "inactive_connections": nl.u32(buf, a, nl.DEST_INACT),
        "persistent_connections": nl.u32(buf, a, nl.DEST_PERSIST),
    }
    if with_stats:
        counts.update(nl.stats(buf, a, nl.DEST_STATS64, nl.DEST_STATS))
    return entry, counts


def service_attributes(service, full=True):
    """The kernel's attributes of a normalised service: its identity, and with FULL the fields
    that NEW and SET need (SET without the persistence engine would clear it)."""
    af = FAMILIES[service["family"]]
    out = [nl.nla(nl.SVC_AF, nl.U16.pack(af))]
    if service["fwmark"] is not None:
        out.append(nl.nla(nl.SVC_FWMARK, nl.U32.pack(service["fwmark"])))
    else:
        out += [
            nl.nla(nl.SVC_PROTOCOL, nl.U16.pack(PROTOCOLS[service["protocol"]])),
            nl.nla(nl.SVC_ADDR, nl.packed_address(af, service["address"])),
            nl.nla(nl.SVC_PORT, nl.BE16.pack(service["port"])),
        ]
    if full:
        flags = SVC_F_PERSISTENT if service["persistent_timeout"] else 0
        flags |= SVC_F_ONEPACKET if service["one_packet"] else 0
        for name in service["scheduler_flags"]:
            flags |= SCHEDULER_FLAGS[name]
        prefix = service["persistent_netmask"]
        netmask = nl.BE32.pack(U32_MAX << (32 - prefix) & U32_MAX) if af == socket.AF_INET else nl.U32.pack(prefix)
        out.append(nl.nla(nl.SVC_SCHED, service["scheduler"].encode() + b"\0"))
        if service["persistence_engine"]:
            out.append(nl.nla(nl.SVC_PE, service["persistence_engine"].encode() + b"\0"))
        out += [
            nl.nla(nl.SVC_FLAGS, nl.FLAGS.pack(flags, U32_MAX & ~SVC_F_HASHED)),
            nl.nla(nl.SVC_TIMEOUT, nl.U32.pack(service["persistent_timeout"])),
            nl.nla(nl.SVC_NETMASK, netmask),
        ]
    return b"".join(out)


def real_attributes(real):
    """The kernel's attributes of a normalised real server: all of them, since SET_DEST resets
    what it is not given (the tunnel settings too)."""
    af = FAMILIES[family_of(real["address"])]
    tunnel = real["forwarding_method"] == "tunnel"
    return b"".join(
        (
            nl.nla(nl.DEST_AF, nl.U16.pack(af)),
            nl.nla(nl.DEST_ADDR, nl.packed_address(af, real["address"])),
            nl.nla(nl.DEST_PORT, nl.BE16.pack(real["port"])),
            nl.nla(nl.DEST_FWD, nl.U32.pack(FORWARDING_METHODS[real["forwarding_method"]])),
            nl.nla(nl.DEST_WEIGHT, nl.U32.pack(real["weight"])),
            nl.nla(nl.DEST_U_THRESH, nl.U32.pack(real["upper_threshold"])),
            nl.nla(nl.DEST_L_THRESH, nl.U32.pack(real["lower_threshold"])),
            nl.nla(nl.DEST_TUN_TYPE, bytes((TUNNEL_TYPES[real["tunnel_type"]] if tunnel else 0,))),
            nl.nla(nl.DEST_TUN_PORT, nl.BE16.pack(real["tunnel_port"] or 0 if tunnel else 0)),
            nl.nla(nl.DEST_TUN_FLAGS, nl.U16.pack(TUNNEL_CHECKSUMS[real["tunnel_checksum"] or "nocsum"] if tunnel else 0)),
        )
    )


def service_request(action, service):
    """(command, body) of the netlink write ACTION (add, set, delete) of SERVICE."""
    return nl.WRITE_COMMANDS["service", action], nl.nla(nl.ATTR_SERVICE, service_attributes(service, full=action != "delete"))


def real_request(action, service, real, service_id=None):
    """(command, body) of the write ACTION of REAL in SERVICE; SERVICE_ID, the service's identity
    as nla(ATTR_SERVICE, ...), saves building it again for each real server."""
    service_id = service_id or nl.nla(nl.ATTR_SERVICE, service_attributes(service, full=False))
    return nl.WRITE_COMMANDS["real", action], service_id + nl.nla(nl.ATTR_DEST, real_attributes(real))


def service_key(entry):
    return tuple(entry[k] for k in ("family", "protocol", "address", "port", "fwmark"))


def real_key(entry):
    return (entry["address"], entry["port"])


# --- talking to the kernel --------------------------------------------------------------------


class IPVSTable:
    """The kernel's IPVS table of this network namespace, over generic netlink."""

    def __init__(self, module):
        check_pyroute2(module)
        self.module = module
        self.writes = 0  # netlink writes the kernel carried out
        try:
            self.nl = nl.IPVSNetlink(IPVS())
        except Exception as exc:  # pyroute2 raises several types when the family is missing
            module.fail_json(
                msg=f"this kernel has no IPVS (the generic netlink family IPVS is missing: {exc}): load the kernel module with 'modprobe ip_vs' "
                "(the lvs.dr.director role does; in a container, load it on the host), or boot a kernel built with CONFIG_IP_VS"
            )

    def close(self):
        self.nl.close()

    def get_services(self, with_stats=False):
        """[(service, counters)] for every service of the table."""
        return self.nl.dump(nl.CMD_GET_SERVICE, b"", lambda buf, top: service_from_attributes(buf, top, with_stats))

    def get_existing_service(self, key):
        for entry, _counters in self.get_services():
            if service_key(entry) == key:
                return entry
        return None

    def get_reals(self, service, with_stats=False):
        """[(real, counts)] for every real server of SERVICE."""
        af = FAMILIES[service["family"]]
        return self.nl.dump(
            nl.CMD_GET_DEST, nl.nla(nl.ATTR_SERVICE, service_attributes(service, full=False)), lambda buf, top: real_from_attributes(buf, top, af, with_stats)
        )

    def get_existing_real(self, service, key):
        for entry, counts in self.get_reals(service):
            if real_key(entry) == key:
                return entry, counts
        return None, None

    def read(self):
        """The whole table, one dump of the services and one of each service's real servers:
        {service key: (service, {real key: real})}."""
        return {service_key(s): (s, {real_key(r): r for r, _counts in self.get_reals(s)}) for s, _counters in self.get_services()}

    def apply_service(self, action, service):
        """Write one service change; the kernel's errno (0 for done)."""
        return self.write([service_request(action, service)])[0]

    def apply_real(self, action, service, real):
        """Write one real server change; the kernel's errno (0 for done)."""
        return self.write([real_request(action, service, real)])[0]

    def settle(self, what, action, code):
        """Fail the module with the kernel's reason, unless CODE is 0 or a lost race: another run
        made the same change (a real server removed twice by two drains)."""
        if code and not lost_race(what, action, code):
            self.module.fail_json(msg=explain_netlink_error(what, action, code), errno=code)

    def write(self, requests):
        """Send [(command, body)], pipelined; the errno of each (0 done, None not sent)."""
        results = self.nl.write(requests)
        self.writes += results.count(0)
        return results

    def drain_real(self, service, real, timeout):
        """Quiesce REAL (weight 0) unless it is, wait up to TIMEOUT seconds for the kernel to show
        no connections for it, and remove it if so: {removed, waited, active_connections,
        inactive_connections}. Not removed means it stays in the table at weight 0."""
        if real["weight"]:
            self.settle("real", "set", self.apply_real("set", service, {**real, "weight": 0}))
        started = time.monotonic()
        counts = self.wait_drained(service, real_key(real), timeout)
        left = {k: (counts or {}).get(k, 0) for k in ("active_connections", "inactive_connections")}
        removed = not sum(left.values())
        if counts is not None and removed:  # None: someone else removed it while we waited
            self.settle("real", "delete", self.apply_real("delete", service, real))
        return {"removed": removed, "waited": round(time.monotonic() - started, 1), **left}

    def wait_drained(self, service, key, timeout, interval=1.0):
        """Poll until the real server KEY has no active and no inactive connections, or
        TIMEOUT seconds pass; its last counts."""
        deadline = time.monotonic() + timeout
        while True:
            _entry, counts = self.get_existing_real(service, key)
            if counts is None or counts["active_connections"] + counts["inactive_connections"] == 0:
                return counts
            if time.monotonic() >= deadline:
                return counts
            time.sleep(interval)


def timed_out_draining(timeout, stuck):
    """The failure text when real servers still have connections at drain_timeout: STUCK is
    [(real server, its service, active, inactive)]."""
    names = ", ".join(f"{real} of {service} ({active} active, {inactive} inactive connections)" for real, service, active, inactive in stuck)
    return (
        f"timed out after {timeout}s draining {names}: left in the table at weight 0 "
        "(raise drain_timeout, or use state=absent to remove it with its connections)"
    )


def lost_race(what, action, code):
    """Whether the kernel refused ACTION on a WHAT (service, real) because another run changed the
    same entry meanwhile: it added it (EEXIST), or removed it or its service (ENOENT, ESRCH).
    Re-reading and planning again is then the answer, not a failure. (ENOENT for a service add or
    set is a scheduler the kernel could not load, not a race.)"""
    if code == errno.EEXIST:
        return action == "add"
    if code == errno.ESRCH:
        return True
    return code == errno.ENOENT and what == "real" and action in ("set", "delete")


def explain_netlink_error(what, action, code):
    """Why the kernel refused to ACTION (add, set, delete) a WHAT (service, real), and the fix."""
    what = "real server" if what == "real" else what
    if code == errno.ENOENT and what == "service" and action in ("add", "set"):
        return (
            "the kernel could not load the scheduler or persistence engine (module ip_vs_<name>): it is not built "
            "for this kernel (twos needs Linux 6.2 or later) or modules cannot be loaded here; "
            "load it with modprobe (in a container, on the host)"
        )
    if (code == errno.ESRCH and what == "service") or (code == errno.ENOENT and what == "real server"):
        return f"the {what} is gone from the kernel's table (changed by someone else during this run); run again"
    if code == errno.EEXIST:
        return f"the {what} appeared in the kernel's table during this run (added by someone else); run again"
    if code == errno.EINVAL and what == "real server":
        return (
            f"the kernel refused to {action} the real server (errno {code}, {os.strerror(code)}): its address must be a "
            "unicast address (not multicast or broadcast), and its forwarding options must suit the service"
        )
    return f"the kernel refused to {action} the {what}: {os.strerror(code)} (errno {code})"
