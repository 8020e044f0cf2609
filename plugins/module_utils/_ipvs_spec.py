# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The IPVS options, each declared once, and the normalised entries they describe.

PRIVATE to the collection: not a public API, it may change without notice.

Pure: no kernel, no Ansible. Each field is declared once below (type, default, choices,
aliases, range); the modules' argument specs are generated from the declarations, and
tests/collection/test_option_docs.py checks that the modules' DOCUMENTATION and the director
role's argument_specs.yml agree with them.

One normalised entry shape serves the kernel's side and the wanted side, so equal dicts mean
nothing to do:

- service: family, protocol, address, port, fwmark, scheduler, persistent_timeout,
  persistent_netmask (a prefix length), persistence_engine, scheduler_flags, one_packet;
- real: address, port, forwarding_method, weight, upper_threshold, lower_threshold,
  tunnel_type, tunnel_port, tunnel_checksum;
- sync daemon: mode, interface, syncid, sync_maxlen, mcast_group, mcast_port, mcast_ttl.
"""

from __future__ import annotations

import copy
import ipaddress

U16_MAX = 0xFFFF
U32_MAX = 0xFFFFFFFF
# ipvsadm's limits, narrower than the kernel's, so that every table the modules make can be
# saved and restored with ipvsadm (the director role restores it so at boot): weight 0-65535
# (the kernel takes up to INT_MAX), thresholds up to INT_MAX (the kernel: u32), persistence up
# to 31 days (the kernel keeps timeout * HZ in 32 bits, which wraps above 4294967 s at HZ=1000).
WEIGHT_MAX = U16_MAX
THRESHOLD_MAX = 0x7FFFFFFF
TIMEOUT_MAX = 31 * 86400

PROTOCOLS = ["tcp", "udp", "sctp"]
FAMILIES = ["ipv4", "ipv6"]
SCHEDULERS = ["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"]
PERSISTENCE_ENGINES = ["sip"]
SCHEDULER_FLAGS = ["sh-fallback", "sh-port", "mh-fallback", "mh-port"]
# The forwarding methods, and the other names ipvsadm's man page gives them.
FORWARDING_ALIASES = {"gatewaying": "dr", "route": "dr", "masquerading": "nat"}
FORWARDING_METHODS = ["dr", "gatewaying", "route", "nat", "masquerading", "tunnel"]
TUNNEL_TYPES = ["ipip", "gue", "gre"]
TUNNEL_CHECKSUMS = ["nocsum", "csum", "remcsum"]

# Each field once. "range" is (lowest, highest, what the lowest means, the unit); it is checked
# when the entry is normalised and is not part of the argument spec.
IDENTITY = {
    "protocol": dict(type="str", choices=PROTOCOLS),
    "address": dict(type="str", aliases=["vip"]),
    "port": dict(type="int", range=(1, U16_MAX, None, "")),
    "fwmark": dict(type="int", range=(1, U32_MAX, None, "")),
    "family": dict(type="str", choices=FAMILIES),
}
SERVICE = {
    "scheduler": dict(type="str", choices=SCHEDULERS, default="wlc"),
    "persistent_timeout": dict(type="int", default=0, range=(0, TIMEOUT_MAX, "not persistent", " seconds (31 days, as ipvsadm)")),
    "persistent_netmask": dict(type="str"),
    "persistence_engine": dict(type="str", choices=PERSISTENCE_ENGINES),
    "scheduler_flags": dict(type="list", elements="str", choices=SCHEDULER_FLAGS),
    "one_packet": dict(type="bool", default=False),
    "state": dict(type="str", choices=["present", "absent"], default="present"),
}
REAL = {
    "address": dict(type="str", required=True, aliases=["rip"]),
    "port": dict(type="int", range=(0, U16_MAX, None, "")),
    "forwarding_method": dict(type="str", choices=FORWARDING_METHODS, default="dr"),
    "tunnel_type": dict(type="str", choices=TUNNEL_TYPES),
    "tunnel_port": dict(type="int", range=(1, U16_MAX, None, "")),
    "tunnel_checksum": dict(type="str", choices=TUNNEL_CHECKSUMS),
    "weight": dict(type="int", default=1, range=(0, WEIGHT_MAX, "quiesced", " (as ipvsadm)")),
    "upper_threshold": dict(type="int", default=0, range=(0, THRESHOLD_MAX, "no threshold", " connections")),
    "lower_threshold": dict(type="int", default=0, range=(0, THRESHOLD_MAX, "no threshold", " connections")),
    "state": dict(type="str", choices=["present", "absent", "drained"], default="present"),
}
DRAIN_TIMEOUT = dict(type="int", default=300, range=(0, None, "remove only if no connections are left", " seconds"))
PROTECTED = {"address": dict(type="str"), "port": dict(type="int"), "protocol": dict(type="str", choices=PROTOCOLS), "fwmark": dict(type="int")}


def argument_spec(fields, prefix_of=None):
    """AnsibleModule's options for FIELDS (copies, without "range"); PREFIX_OF renames some."""
    out = {}
    for name, field in fields.items():
        spec = {k: copy.copy(v) for k, v in field.items() if k != "range"}
        out[(prefix_of or {}).get(name, "") + name] = spec
    return out


def without_defaults(options):
    """OPTIONS with no default but state's: ipvs_table's service and real server options, where
    merged keeps the kernel's value of one left out (want_service and want_real give the
    defaults where no value is kept)."""
    return {name: {k: v for k, v in option.items() if k != "default" or name == "state"} for name, option in options.items()}


def identity_spec(prefix=""):
    """The options that name a service, for ipvs_service (PREFIX "") and ipvs_real ("service_":
    its address and port), and how they combine."""
    address, port = f"{prefix}address", f"{prefix}port"
    return dict(
        argument_spec=argument_spec(IDENTITY, {"address": prefix, "port": prefix}),
        required_one_of=[(address, "fwmark")],
        mutually_exclusive=[("fwmark", address), ("fwmark", port), ("fwmark", "protocol")],
        required_together=[(address, port)],
    )


class IPVSInputError(ValueError):
    """A parameter the kernel must never see; the message names the option and the fix."""


def check_range(option, value, field):
    """VALUE, or IPVSInputError when it is out of FIELD's range. None stays None."""
    low, high, meaning, unit = field["range"]
    if value is None or (low <= value and (high is None or value <= high)):
        return value
    lowest = f"{low} ({meaning})" if meaning else str(low)
    raise IPVSInputError(f"{option}: {value} is out of range; use {lowest} " + (f"to {high}{unit}" if high is not None else f"or more{unit}"))


def normalise_address(value, option):
    try:
        return ipaddress.ip_address(str(value).strip()).compressed
    except ValueError:
        raise IPVSInputError(f"{option}: '{value}' is not an IPv4 or IPv6 address") from None


def family_of(address):
    return "ipv6" if ":" in address else "ipv4"


def normalise_netmask(value, family, persistent):
    """persistent_netmask as a prefix length: IPv4 takes a netmask or a length, IPv6 a length."""
    full = 32 if family == "ipv4" else 128
    if value is None or not persistent:
        return full
    text = str(value).strip().lstrip("/")
    try:
        prefix = ipaddress.ip_network(f"0.0.0.0/{text}").prefixlen if family == "ipv4" and "." in text else int(text)
    except ValueError:
        prefix = -1
    if not 1 <= prefix <= full:
        allowed = "a netmask such as 255.255.255.0 or a prefix length 1-32" if family == "ipv4" else "a prefix length 1-128"
        raise IPVSInputError(f"persistent_netmask: '{value}' is not valid for an {family} service; use {allowed}")
    return prefix


KEY_FIELDS = ("family", "protocol", "address", "port", "fwmark")


def service_key_from(params, prefix=""):
    """The identity of a service, from ipvs_service's options (PREFIX "") or ipvs_real's
    ("service_"): (family, protocol, address, port, fwmark)."""
    fwmark = check_range("fwmark", params.get("fwmark"), IDENTITY["fwmark"])
    if fwmark is not None:
        return (params.get("family") or "ipv4", None, None, None, fwmark)
    address = normalise_address(params.get(f"{prefix}address"), f"{prefix}address")
    if params.get("family") and params["family"] != family_of(address):
        raise IPVSInputError(f"family: {params['family']} does not match {prefix}address {address} ({family_of(address)})")
    port = check_range(f"{prefix}port", params.get(f"{prefix}port"), IDENTITY["port"])
    return (family_of(address), params.get("protocol") or "tcp", address, port, None)


def service_key(entry):
    return tuple(entry[k] for k in KEY_FIELDS)


def real_key(entry):
    return (entry["address"], entry["port"])


def describe_service(key):
    """A service key as people write it: tcp 172.25.8.100:80, udp [2001:db8::1]:53, fwmark 10 (ipv4)."""
    family, protocol, address, port, fwmark = key
    if fwmark is not None:
        return f"fwmark {fwmark} ({family})"
    return f"{protocol} [{address}]:{port}" if family == "ipv6" else f"{protocol} {address}:{port}"


def identity_of(key):
    """The entry of a service that only its identity is known of (ipvs_real's)."""
    return dict(zip(KEY_FIELDS, key, strict=True))


def want_service(params):
    """The service as ipvs_service's parameters describe it, normalised."""
    key = service_key_from(params)
    protocol = key[1]
    scheduler = params.get("scheduler") or SERVICE["scheduler"]["default"]
    timeout = check_range("persistent_timeout", params.get("persistent_timeout") or 0, SERVICE["persistent_timeout"])
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
        **identity_of(key),
        "scheduler": scheduler,
        "persistent_timeout": timeout,
        "persistent_netmask": normalise_netmask(params.get("persistent_netmask"), key[0], timeout > 0),
        "persistence_engine": engine or None,
        "scheduler_flags": flags,
        "one_packet": one_packet,
    }


def want_real(params, service):
    """The real server as ipvs_real's parameters describe it, normalised; SERVICE is the
    (normalised, or identity-only) service it belongs to. For state absent and drained only the
    identity (address and port) counts: the rest is not checked against the forwarding method."""
    address = normalise_address(params.get("address"), "address")
    port = check_range("port", params.get("port"), REAL["port"])
    if port == 0 and service["fwmark"] is None:
        raise IPVSInputError("port: 0 is for real servers of firewall-mark services; use 1 to 65535, or leave it out for the service port")
    port = (service["port"] or 0) if port is None else port
    identity = {"address": address, "port": port}
    if params.get("state", "present") != "present":
        return identity
    method = params.get("forwarding_method") or "dr"
    method = FORWARDING_ALIASES.get(method, method)
    tunnel = {k: params.get(k) for k in ("tunnel_type", "tunnel_port", "tunnel_checksum")}
    if method != "tunnel" and any(v is not None for v in tunnel.values()):
        given = ", ".join(k for k, v in tunnel.items() if v is not None)
        raise IPVSInputError(f"{given}: tunnel options need forwarding_method tunnel, not {method}")
    if family_of(address) != service["family"] and method != "tunnel":
        raise IPVSInputError(
            f"address: {address} is {family_of(address)} but the service is {service['family']}; only forwarding_method tunnel can mix families"
        )
    if method in ("dr", "tunnel") and service["port"] is not None and port != service["port"]:
        raise IPVSInputError(
            f"port: {method} forwarding does no port mapping, so the real server port must be the service port "
            f"{service['port']}, not {port}; use forwarding_method nat to map ports"
        )
    if method == "tunnel":
        tunnel = want_tunnel(**tunnel)
    values = {k: check_range(k, REAL[k]["default"] if params.get(k) is None else params[k], REAL[k]) for k in ("weight", "upper_threshold", "lower_threshold")}
    if values["lower_threshold"] > values["upper_threshold"]:
        # ip_vs_add_dest and ip_vs_edit_dest refuse l_threshold > u_threshold (ERANGE), 0 included.
        raise IPVSInputError(
            f"lower_threshold: {values['lower_threshold']} is above upper_threshold {values['upper_threshold']}, which the kernel refuses; "
            "set upper_threshold above it, or leave lower_threshold at 0"
        )
    return {**identity, "forwarding_method": method, **values, **tunnel}


def want_tunnel(tunnel_type, tunnel_port, tunnel_checksum):
    """The tunnel fields of a real server with forwarding_method tunnel."""
    tunnel_type = tunnel_type or "ipip"
    if tunnel_type == "ipip" and (tunnel_port is not None or tunnel_checksum is not None):
        raise IPVSInputError("tunnel_port, tunnel_checksum: they apply to tunnel_type gue and gre (tunnel_port to gue only), not ipip")
    if tunnel_type == "gue" and not tunnel_port:
        raise IPVSInputError("tunnel_port: tunnel_type gue needs the UDP port of the real server's GUE receiver")
    if tunnel_type == "gre" and tunnel_port is not None:
        raise IPVSInputError("tunnel_port: applies to tunnel_type gue only, not gre")
    return {
        "tunnel_type": tunnel_type,
        "tunnel_port": check_range("tunnel_port", tunnel_port, REAL["tunnel_port"]) if tunnel_type == "gue" else None,
        "tunnel_checksum": (tunnel_checksum or "nocsum") if tunnel_type != "ipip" else None,
    }


def service_options(service):
    """ipvs_table's options for a normalised service, the inverse of want_service: its identity
    and scheduler, and each other option only where it differs from its default (ipvsadm-save
    prints a service so too). want_service of them gives SERVICE back."""
    family = service["family"]
    out = (
        {"fwmark": service["fwmark"]}
        if service["fwmark"] is not None
        else {"protocol": service["protocol"], "address": service["address"], "port": service["port"]}
    )
    if service["fwmark"] is not None and family != "ipv4":
        out["family"] = family
    out["scheduler"] = service["scheduler"]
    if service["persistent_timeout"]:
        out["persistent_timeout"] = service["persistent_timeout"]
        prefix = service["persistent_netmask"]
        if prefix != (32 if family == "ipv4" else 128):
            out["persistent_netmask"] = str(ipaddress.ip_network(f"0.0.0.0/{prefix}").netmask) if family == "ipv4" else str(prefix)
    if service["persistence_engine"]:
        out["persistence_engine"] = service["persistence_engine"]
    if service["scheduler_flags"]:
        out["scheduler_flags"] = list(service["scheduler_flags"])
    if service["one_packet"]:
        out["one_packet"] = True
    return out


def real_options(real, service):
    """ipvs_table's options for a normalised real server of SERVICE, the inverse of want_real:
    address, forwarding method and weight, the rest only where it differs from its default.
    The kernel's own methods (local, bypass: the kernel picks them, nobody asks for them) are dr."""
    out = {"address": real["address"]}
    if real["port"] != (service["port"] or 0):
        out["port"] = real["port"]
    out["forwarding_method"] = real["forwarding_method"] if real["forwarding_method"] in ("nat", "tunnel") else "dr"
    out["weight"] = real["weight"]
    for name in ("upper_threshold", "lower_threshold"):
        if real[name]:
            out[name] = real[name]
    for name in ("tunnel_type", "tunnel_port", "tunnel_checksum"):
        if real.get(name) is not None:
            out[name] = real[name]
    return out


# --- the connection-sync daemon ----------------------------------------------------------------
#
# A daemon: mode (master or backup: the kernel runs at most one of each per network namespace),
# interface, syncid, sync_maxlen, mcast_group, mcast_port, mcast_ttl. The last four came in
# Linux 4.3; left out, each takes the kernel's default, which the wanted daemon spells out so
# that a daemon running with other values is told apart.

SYNC_MODES = ["master", "backup"]
SYNC_DAEMON = {
    "mode": dict(type="str", choices=SYNC_MODES, required=True),
    "state": dict(type="str", choices=["present", "absent"], default="present"),
    "interface": dict(type="str"),
    "syncid": dict(type="int", default=0, range=(0, 255, "a backup takes every master's messages", "")),
    "sync_maxlen": dict(type="int"),
    "mcast_group": dict(type="str"),
    "mcast_port": dict(type="int", range=(1, U16_MAX, None, "")),
    "mcast_ttl": dict(type="int", range=(1, 255, None, "")),
}
# The kernel's defaults (IP_VS_SYNC_GROUP, IP_VS_SYNC_PORT, a TTL of 1: the local segment).
SYNC_DEFAULTS = {"mcast_group": "224.0.0.81", "mcast_port": 8848, "mcast_ttl": 1}
SYNC_SINCE_4_3 = ("sync_maxlen", "mcast_group", "mcast_port", "mcast_ttl")
IFNAMSIZ = 16


def sync_headers(family):
    """The bytes of IP and UDP header in a sync message: sync_maxlen is its UDP payload."""
    return 48 if family == "ipv6" else 28


def sync_maxlen_range(mode, family):
    """The sync_maxlen the kernel keeps as given (start_sync_thread clamps any other): a backup's
    receive buffer is at least 1024 bytes; the payload of a UDP datagram at most 65535 less its headers."""
    return (1024 if mode == "backup" else 1), U16_MAX - sync_headers(family)


def default_sync_maxlen(mode, family, mtu):
    """What the kernel picks when sync_maxlen is left out: for a master, a 1500-byte packet's
    payload; for a backup, the interface's MTU (MTU, at least 1500) less the headers."""
    size = 1500 if mode == "master" else min(max(mtu, 1500), U16_MAX)
    return size - sync_headers(family)


def check_interface_name(name):
    """NAME, or IPVSInputError unless it is a name the kernel may give an interface."""
    text = "" if name is None else str(name)
    if not text or text in (".", "..") or len(text.encode()) >= IFNAMSIZ or any(c in text for c in "/:\0") or any(c.isspace() for c in text):
        raise IPVSInputError(
            f"interface: '{text}' is not an interface name; use the name of an existing interface (ip link show), 1 to 15 characters without '/', ':' or spaces"
        )
    return text


def want_daemon(params, mtu=None):
    """The sync daemon as ipvs_sync_daemon's parameters describe it, normalised, with the kernel's
    default for each option left out; MTU is the interface's, for a backup's sync_maxlen. For
    state absent only the mode counts."""
    mode = params["mode"]
    if params.get("state", "present") != "present":
        return {"mode": mode}
    interface = check_interface_name(params.get("interface"))
    syncid = check_range("syncid", params.get("syncid") or 0, SYNC_DAEMON["syncid"])  # None: the role's item left it out
    group = params.get("mcast_group")
    if group is None:
        group = SYNC_DEFAULTS["mcast_group"]
    else:
        group = normalise_address(group, "mcast_group")
        if not ipaddress.ip_address(group).is_multicast:
            raise IPVSInputError(
                f"mcast_group: {group} is not a multicast address; use one of 224.0.0.0/4 (IPv4) or ff00::/8 (IPv6), "
                f"or leave mcast_group out for the kernel's {SYNC_DEFAULTS['mcast_group']}"
            )
    family = family_of(group)
    low, high = sync_maxlen_range(mode, family)
    maxlen = params.get("sync_maxlen")
    if maxlen is None:
        maxlen = default_sync_maxlen(mode, family, mtu or 1500)
    elif not low <= maxlen <= high:
        raise IPVSInputError(
            f"sync_maxlen: {maxlen} is out of range for a {mode} daemon with an {family} group; use {low} to {high} bytes of UDP "
            "payload (the kernel would change any other value), or leave it out for the kernel's default"
        )
    return {
        "mode": mode,
        "interface": interface,
        "syncid": syncid,
        "sync_maxlen": maxlen,
        "mcast_group": group,
        **{k: SYNC_DEFAULTS[k] if params.get(k) is None else check_range(k, params[k], SYNC_DAEMON[k]) for k in ("mcast_port", "mcast_ttl")},
    }


def diff_daemon(before, want):
    """The fields of the running daemon BEFORE that differ from WANT; a field an old kernel
    (before 4.3) does not report (None) is not compared."""
    return sorted(k for k in want if before.get(k) is not None and before[k] != want[k])


def plan_daemon(before, want, state):
    """start, restart, stop or None: what takes the running daemon BEFORE (None when none runs) to
    WANT. The kernel cannot change a running daemon: a different one is stopped and started again."""
    if state != "present":
        return "stop" if before else None
    if not before:
        return "start"
    return "restart" if diff_daemon(before, want) else None
