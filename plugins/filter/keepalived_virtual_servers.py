# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The director role's keepalived mode: its services as keepalived's virtual_server blocks. The
services are normalised by the same code as lvs.dr.ipvs_table's (module_utils/_ipvs_spec), so
one director_services means the same table in both modes, and is refused for the same reasons."""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError

from ansible_collections.lvs.dr.plugins.module_utils._ipvs_spec import (
    PROTOCOLS,
    SCHEDULERS,
    IPVSInputError,
    describe_service,
    service_key,
    want_real,
    want_service,
)

DOCUMENTATION = r"""
name: keepalived_virtual_servers
author: lvs.dr developers (@lvs-dr)
version_added: 0.2.0
short_description: Write the director role's services as keepalived's virtual_server blocks
description:
  - Turns the services that lvs.dr.resolve_services returns (with a C(check) each) into the C(virtual_server) blocks of
    C(keepalived.conf), one C(real_server) with its health check per real server.
  - Each service and real server is normalised and checked as lvs.dr.ipvs_table does, so a service that module would
    refuse is refused here, with the same message.
  - A service or real server with C(state=absent) is left out. A real server with C(state=drained) gets weight 0;
    keepalived sets it, new connections go elsewhere, established ones go on.
  - A firewall-mark service's check needs C(port), since its real servers have port 0. A service with no real server of a
    weight above 0 is refused, as keepalived does (its quorum).
  - The check's C(type) is V(tcp) (C(TCP_CHECK)), V(http) (C(HTTP_GET) of C(path), expecting C(status)) or V(none) (no
    checker, the real server stays in the table). C(port) checks another port than the real server's. C(delay_loop),
    C(connect_timeout), C(retry) and C(delay_before_retry) are keepalived's, in seconds.
options:
  _input:
    description: The services, each with a C(check) (lvs.dr.resolve_services with O(lvs.dr.resolve_services#filter:check)).
    type: list
    elements: dict
    required: true
  drained:
    description: Addresses of real servers to drain in every service (weight 0), as playbooks/drain.yml asks.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Write keepalived's configuration
  ansible.builtin.template:
    src: keepalived.conf.j2  # {{ director_services_resolved | lvs.dr.keepalived_virtual_servers }} in it
    dest: /etc/keepalived/keepalived.conf
    mode: "0600"
"""

RETURN = r"""
_value:
  description: The blocks, each line ending in a newline.
  type: str
"""

# What a check leaves out (the role's director_ha_check has the same values).
CHECK_DEFAULTS = {"type": "tcp", "path": "/", "status": 200, "delay_loop": 2, "connect_timeout": 1, "retry": 1, "delay_before_retry": 1}
CHECK_KEYS = {*CHECK_DEFAULTS, "port"}
CHECK_TYPES = ("tcp", "http", "none")
METHODS = {"dr": "DR", "nat": "NAT", "tunnel": "TUN"}


def _number(check, name, low, where):
    value = check.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
        raise IPVSInputError(f"{where}: check.{name} must be a number of at least {low}, got {value!r}")
    return int(value) if float(value).is_integer() else value


def _checker(check, where):
    """The checker block of CHECK, which _service_lines has merged over CHECK_DEFAULTS."""
    unknown = sorted(set(check) - CHECK_KEYS)
    if unknown:
        raise IPVSInputError(f"{where}: check takes {', '.join(sorted(CHECK_KEYS))}; remove {', '.join(unknown)}")
    kind = check["type"]
    if kind not in CHECK_TYPES:
        raise IPVSInputError(f"{where}: check.type must be one of {', '.join(CHECK_TYPES)}, got {kind!r}")
    if kind == "none":
        return []
    lines = []
    if kind == "http":
        status = check["status"]
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise IPVSInputError(f"{where}: check.status must be an HTTP status code (100 to 599), got {status!r}")
        path = str(check["path"])
        if not path.startswith("/") or any(c.isspace() or c in "{}\"'#!" for c in path):
            raise IPVSInputError(f"{where}: check.path must be a URL path that starts with / (no spaces, quotes, braces, # or !), got {path!r}")
        lines += ["HTTP_GET {", "    url {", f"        path {path}", f"        status_code {status}", "    }"]
    else:
        lines.append("TCP_CHECK {")
    if check.get("port") is not None:
        lines.append(f"    connect_port {_number(check, 'port', 1, where)}")
    for name, low in (("connect_timeout", 0.001), ("retry", 0), ("delay_before_retry", 0)):
        lines.append(f"    {name} {_number(check, name, low, where)}")
    return [*lines, "}"]


def _service_lines(service, drained):
    params = {k: v for k, v in service.items() if k not in ("reals", "check")}
    want = want_service(params)
    where = f"director_services: {describe_service(service_key(want))}"
    for name, value, allowed in (("scheduler", want["scheduler"], SCHEDULERS), ("protocol", want["protocol"], [*PROTOCOLS, None])):
        if value not in allowed:
            raise IPVSInputError(f"{where}: {name} {value!r} is not one of {', '.join(a for a in allowed if a)}")
    check = service.get("check") or {}
    if not isinstance(check, dict):
        raise IPVSInputError(f"{where}: check must be a dict (type, path, status, ...), got {check!r}")
    check = {**CHECK_DEFAULTS, **check}
    checker = _checker(check, where)
    if checker and want["fwmark"] is not None and check.get("port") is None:
        # keepalived checks a real server at its port, which is 0 in a firewall-mark service.
        raise IPVSInputError(f"{where}: a {check['type']} check of a firewall-mark service needs check.port (its real servers have port 0)")
    if want["fwmark"] is not None:
        head = [f"virtual_server fwmark {want['fwmark']} {{"] + (["    ip_family inet6"] if want["family"] == "ipv6" else [])
    else:
        head = [f"virtual_server {want['address']} {want['port']} {{", f"    protocol {want['protocol'].upper()}"]
    lines = [*head, f"    lvs_sched {want['scheduler']}"]
    lines += [f"    {flag}" for flag in want["scheduler_flags"]] + (["    ops"] if want["one_packet"] else [])
    if want["persistent_timeout"]:
        lines.append(f"    persistence_timeout {want['persistent_timeout']}")
        if want["persistent_netmask"] != (32 if want["family"] == "ipv4" else 128):
            lines.append(f"    persistence_granularity {_granularity(want)}")
        if want["persistence_engine"]:
            lines.append(f"    persistence_engine {want['persistence_engine']}")
    if checker:
        lines.append(f"    delay_loop {_number(check, 'delay_loop', 0.001, where)}")
    weights = 0
    for real in service.get("reals") or []:
        if real.get("state", "present") == "absent":
            continue
        entry = want_real({**real, "state": "present"}, want)
        is_drained = real.get("state") == "drained" or entry["address"] in drained
        weights += 0 if is_drained else entry["weight"]
        lines += [f"    real_server {entry['address']} {entry['port']} {{", f"        weight {0 if is_drained else entry['weight']}"]
        method = METHODS[entry["forwarding_method"]]
        if method == "TUN":
            method += f" type {entry['tunnel_type']}"
            method += f" port {entry['tunnel_port']}" if entry["tunnel_port"] else ""
            method += f" {entry['tunnel_checksum']}" if entry["tunnel_checksum"] else ""
        lines.append(f"        lvs_method {method}")
        if entry["upper_threshold"]:
            lines.append(f"        uthreshold {entry['upper_threshold']}")
        if entry["lower_threshold"]:
            lines.append(f"        lthreshold {entry['lower_threshold']}")
        lines += [f"        {line}" for line in checker]
        lines.append("    }")
    if weights == 0:
        # keepalived -t refuses a service whose quorum (1) is above its real servers' total weight.
        raise IPVSInputError(
            f"{where}: no real server would have a weight above 0 (all drained or weight 0), which keepalived refuses; "
            "keep one real server in it, or remove the service (state: absent)"
        )
    return [*lines, "}"]


def _granularity(want):
    if want["family"] == "ipv4":
        return str(ipaddress.ip_network(f"0.0.0.0/{want['persistent_netmask']}").netmask)
    return str(want["persistent_netmask"])


def keepalived_virtual_servers(services, drained=()):
    if not isinstance(services, (list, tuple)) or not all(isinstance(s, dict) for s in services):
        raise AnsibleFilterError(f"keepalived_virtual_servers: expected the director's services (a list of dicts), got {services!r}")
    lines = []
    try:
        for service in services:
            if service.get("state", "present") != "absent":
                lines += _service_lines(service, set(drained or ()))
    except IPVSInputError as e:
        raise AnsibleFilterError(str(e) if str(e).startswith("director_services") else f"director_services: {e}") from e
    return "".join(f"{line}\n" for line in lines)


class FilterModule:
    def filters(self):
        return {"keepalived_virtual_servers": keepalived_virtual_servers}
