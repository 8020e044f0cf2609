# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The kernel's IPVS table as plain dicts: read it over generic netlink (pyroute2), normalise
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
import struct
import time
import traceback

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.compat.version import LooseVersion

PYROUTE2_MIN = "0.9.5"
try:
    import pyroute2
    from pyroute2 import IPVS, IPVSDest, IPVSService
    from pyroute2.netlink.exceptions import NetlinkError

    HAS_PYROUTE2 = True
    PYROUTE2_IMP_ERR = None
except ImportError:
    HAS_PYROUTE2 = False
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
    if LooseVersion(version) < LooseVersion(PYROUTE2_MIN):
        module.fail_json(
            msg=f"pyroute2 {version} is too old: its IPVS API needs pyroute2>={PYROUTE2_MIN} "
            f"(Debian 12 ships 0.7.2; install a newer one with pip, e.g. pip install 'pyroute2>={PYROUTE2_MIN}')"
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
        raise IPVSInputError(
            f"scheduler_flags: {', '.join(wrong)} do not apply to scheduler {scheduler}; sh-* go with scheduler sh, mh-* with mh"
        )
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
            f"address: {address} is {family_of(address)} but the service is {service['family']}; "
            "only forwarding_method tunnel can mix families"
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
    return {"address": address, "port": port, "forwarding_method": method, "weight": weight,
            "upper_threshold": upper, "lower_threshold": lower, **tunnel}


# --- diffing --------------------------------------------------------------------------------


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


def converge_entry(module, state, before, want, apply, read_back):
    """Plan, apply (unless in check mode) and report one entry for STATE (present or absent):
    the module result's common part, with "entry" the entry as the kernel has it after the
    run (or would have)."""
    action = plan_entry(before, want, state)
    after = before if action is None else (None if action == "delete" else want)
    if action and not module.check_mode:
        apply(action, before if action == "delete" else want)
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


# --- reading the kernel ---------------------------------------------------------------------


def _attr(nla, name):
    return nla.get_attr(name)


def _netmask_prefix(family, raw):
    """The kernel's netmask attribute as a prefix length. pyroute2 decodes it as an IPv4
    address; for IPv6 the kernel puts a host-order prefix length in the same 4 bytes."""
    if raw is None:
        return 32 if family == "ipv4" else 128
    if family == "ipv4":
        return ipaddress.ip_network(f"0.0.0.0/{raw}").prefixlen
    return struct.unpack("=I", socket.inet_aton(raw))[0]


def _netmask_attr(family, prefix):
    """The inverse of _netmask_prefix: what pyroute2 must be given for a prefix length."""
    if family == "ipv4":
        return str(ipaddress.ip_network(f"0.0.0.0/{prefix}").netmask)
    return socket.inet_ntoa(struct.pack("=I", prefix))


def service_from_message(msg):
    """A normalised service (plus its counters) from one netlink dump message."""
    svc = msg.get_attr("IPVS_CMD_ATTR_SERVICE")
    family = "ipv6" if _attr(svc, "IPVS_SVC_ATTR_AF") == socket.AF_INET6 else "ipv4"
    fwmark = _attr(svc, "IPVS_SVC_ATTR_FWMARK") or None
    protocol = None if fwmark else {v: k for k, v in PROTOCOLS.items()}.get(_attr(svc, "IPVS_SVC_ATTR_PROTOCOL"))
    flags = (_attr(svc, "IPVS_SVC_ATTR_FLAGS") or {}).get("flags", 0)
    scheduler = _attr(svc, "IPVS_SVC_ATTR_SCHED_NAME")
    timeout = (_attr(svc, "IPVS_SVC_ATTR_TIMEOUT") or 0) if flags & SVC_F_PERSISTENT else 0
    entry = {
        "family": family,
        "protocol": protocol,
        "address": None if fwmark else ipaddress.ip_address(_attr(svc, "IPVS_SVC_ATTR_ADDR")).compressed,
        "port": None if fwmark else _attr(svc, "IPVS_SVC_ATTR_PORT"),
        "fwmark": fwmark,
        "scheduler": scheduler,
        "persistent_timeout": timeout,
        "persistent_netmask": _netmask_prefix(family, _attr(svc, "IPVS_SVC_ATTR_NETMASK")) if timeout else (32 if family == "ipv4" else 128),
        "persistence_engine": _attr(svc, "IPVS_SVC_ATTR_PE_NAME") or None,
        "scheduler_flags": sorted(name for name, bit in SCHEDULER_FLAGS.items() if name.startswith(f"{scheduler}-") and flags & bit),
        "one_packet": bool(flags & SVC_F_ONEPACKET),
    }
    return entry, _stats(svc, "IPVS_SVC_ATTR_STATS64", "IPVS_SVC_ATTR_STATS")


def real_from_message(msg):
    """A normalised real server (plus its connection counts and counters) from a dump message."""
    dest = msg.get_attr("IPVS_CMD_ATTR_DEST")
    method = {v: k for k, v in FORWARDING_METHODS.items()}.get(_attr(dest, "IPVS_DEST_ATTR_FWD_METHOD") & 0x7, "local")
    tunnel = {"tunnel_type": None, "tunnel_port": None, "tunnel_checksum": None}
    if method == "tunnel":
        tunnel_type = {v: k for k, v in TUNNEL_TYPES.items()}.get(_attr(dest, "IPVS_DEST_ATTR_TUN_TYPE") or 0)
        # pyroute2 decodes the big-endian tunnel port as host order.
        port = socket.ntohs(_attr(dest, "IPVS_DEST_ATTR_TUN_PORT") or 0)
        csum = {v: k for k, v in TUNNEL_CHECKSUMS.items()}.get(_attr(dest, "IPVS_DEST_ATTR_TUN_FLAGS") or 0, "nocsum")
        tunnel = {
            "tunnel_type": tunnel_type,
            "tunnel_port": port if tunnel_type == "gue" else None,
            "tunnel_checksum": csum if tunnel_type != "ipip" else None,
        }
    entry = {
        "address": ipaddress.ip_address(_attr(dest, "IPVS_DEST_ATTR_ADDR")).compressed,
        "port": _attr(dest, "IPVS_DEST_ATTR_PORT"),
        "forwarding_method": method,
        "weight": _attr(dest, "IPVS_DEST_ATTR_WEIGHT"),
        "upper_threshold": _attr(dest, "IPVS_DEST_ATTR_U_THRESH") or 0,
        "lower_threshold": _attr(dest, "IPVS_DEST_ATTR_L_THRESH") or 0,
        **tunnel,
    }
    counts = {
        "active_connections": _attr(dest, "IPVS_DEST_ATTR_ACTIVE_CONNS") or 0,
        "inactive_connections": _attr(dest, "IPVS_DEST_ATTR_INACT_CONNS") or 0,
        "persistent_connections": _attr(dest, "IPVS_DEST_ATTR_PERSIST_CONNS") or 0,
    }
    return entry, {**counts, **_stats(dest, "IPVS_DEST_ATTR_STATS64", "IPVS_DEST_ATTR_STATS")}


def _stats(nla, name64, name32):
    stats = nla.get_attr(name64) or nla.get_attr(name32)
    if stats is None:
        return {}
    names = ("CONNS", "INPKTS", "OUTPKTS", "INBYTES", "OUTBYTES")
    keys = ("connections", "packets_in", "packets_out", "bytes_in", "bytes_out")
    return {k: stats.get_attr(f"IPVS_STATS_ATTR_{n}") or 0 for k, n in zip(keys, names, strict=True)}


def service_key(entry):
    return tuple(entry[k] for k in ("family", "protocol", "address", "port", "fwmark"))


def real_key(entry):
    return (entry["address"], entry["port"])


# --- talking to the kernel --------------------------------------------------------------------


def _service_nla(service, full=True):
    """pyroute2's IPVSService for a normalised service (FULL: with the fields SET needs)."""
    fields = {"af": FAMILIES[service["family"]]}
    if service["fwmark"] is not None:
        fields["fwmark"] = service["fwmark"]
    else:
        fields.update(protocol=PROTOCOLS[service["protocol"]], addr=service["address"], port=service["port"])
    if full:
        flags = SVC_F_PERSISTENT if service["persistent_timeout"] else 0
        flags |= SVC_F_ONEPACKET if service["one_packet"] else 0
        for name in service["scheduler_flags"]:
            flags |= SCHEDULER_FLAGS[name]
        netmask = _netmask_attr(service["family"], service["persistent_netmask"])
        fields.update(sched_name=service["scheduler"], timeout=service["persistent_timeout"], netmask=netmask,
                      flags={"flags": flags, "mask": U32_MAX & ~SVC_F_HASHED})
        if service["persistence_engine"]:
            fields["pe_name"] = service["persistence_engine"]
    return IPVSService(**fields)


def _dest_nla(real):
    fields = {"addr": real["address"], "port": real["port"], "fwd_method": FORWARDING_METHODS[real["forwarding_method"]],
              "weight": real["weight"], "u_thresh": real["upper_threshold"], "l_thresh": real["lower_threshold"]}
    if real["forwarding_method"] == "tunnel":
        fields.update(tun_type=TUNNEL_TYPES[real["tunnel_type"]], tun_port=socket.htons(real["tunnel_port"] or 0),
                      tun_flags=TUNNEL_CHECKSUMS[real["tunnel_checksum"] or "nocsum"])
    return IPVSDest(**fields)


class IPVSTable:
    """The kernel's IPVS table of this network namespace, over generic netlink."""

    def __init__(self, module):
        check_pyroute2(module)
        self.module = module
        self.writes = 0
        try:
            self.sock = IPVS()
        except Exception as exc:  # pyroute2 raises several types when the family is missing
            module.fail_json(
                msg="this kernel has no IPVS (the generic netlink family IPVS is missing): "
                f"load it with 'modprobe ip_vs' (in a container, on the host): {exc}"
            )

    def close(self):
        self.sock.close()

    def get_services(self):
        """[(service, counters)] for every service of the table."""
        return [service_from_message(m) for m in self.sock.service("dump")]

    def get_existing_service(self, key):
        for entry, _counters in self.get_services():
            if service_key(entry) == key:
                return entry
        return None

    def get_reals(self, service):
        """[(real, counts)] for every real server of SERVICE."""
        return [real_from_message(m) for m in self.sock.dest("dump", service=_service_nla(service, full=False))]

    def get_existing_real(self, service, key):
        for entry, counts in self.get_reals(service):
            if real_key(entry) == key:
                return entry, counts
        return None, None

    def apply_service(self, action, service):
        command = {"add": "add", "set": "set", "delete": "del"}[action]
        self._write(self.sock.service, command, service=_service_nla(service, full=action != "delete"))

    def apply_real(self, action, service, real):
        command = {"add": "add", "set": "set", "delete": "del"}[action]
        self._write(self.sock.dest, command, service=_service_nla(service, full=False), dest=_dest_nla(real))

    def _write(self, call, command, **kwargs):
        try:
            call(command, **kwargs)
        except NetlinkError as exc:
            self.module.fail_json(msg=explain_netlink_error(command, exc.code, kwargs), errno=exc.code)
        self.writes += 1

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


def explain_netlink_error(command, code, kwargs):
    what = "real server" if "dest" in kwargs else "service"
    if code == errno.ENOENT and what == "service" and command in ("add", "set"):
        return ("the kernel could not load the scheduler or persistence engine (module ip_vs_<name>): it is not built "
                "for this kernel (twos needs Linux 6.2 or later) or modules cannot be loaded here; "
                "load it with modprobe (in a container, on the host)")
    if (code == errno.ESRCH and what == "service") or (code == errno.ENOENT and what == "real server"):
        return f"the {what} is gone from the kernel's table (changed by someone else during this run); run again"
    if code == errno.EEXIST:
        return f"the {what} appeared in the kernel's table during this run (added by someone else); run again"
    return f"the kernel refused to {command} the {what}: {os.strerror(code)} (errno {code})"
