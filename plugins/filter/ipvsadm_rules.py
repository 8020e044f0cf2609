# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The director role's saved table, from one read of the kernel (lvs.dr.ipvs_info): the lines
ipvsadm-save -n prints, plus the real servers' thresholds (-x/-y), which ipvsadm-save leaves out
and ipvsadm-restore takes."""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: ipvsadm_rules
author: lvs.dr developers (@lvs-dr)
version_added: 0.1.0
short_description: Write an IPVS table read by lvs.dr.ipvs_info as ipvsadm-restore's input
description:
  - Turns the O(lvs.dr.ipvs_info#module:services) that lvs.dr.ipvs_info returns into the text that C(ipvsadm-restore)
    reads, one C(-A) line per virtual service followed by one C(-a) line per real server, in C(ipvsadm-save -n)'s
    format and order of options.
  - Unlike C(ipvsadm-save), each real server with a connection threshold gets C(-x UPPER -y LOWER), so a restore brings
    the thresholds back.
  - Services are sorted by firewall mark, family, protocol, address and port, real servers by address and port, so the
    text changes only when the table does.
options:
  _input:
    description: lvs.dr.ipvs_info's O(lvs.dr.ipvs_info#module:services).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Read the IPVS table
  lvs.dr.ipvs_info:
  register: table

- name: Save it where the ipvsadm service restores it from at boot
  ansible.builtin.copy:
    dest: /etc/ipvsadm.rules
    content: "{{ table.services | lvs.dr.ipvsadm_rules }}"
    mode: "0600"
"""

RETURN = r"""
_value:
  description: The rules, one per line, each line ending in a newline; V("") for an empty table.
  type: str
"""


PROTOCOLS = {"tcp": ("-t", 6), "udp": ("-u", 17), "sctp": ("--sctp-service", 132)}
METHODS = {"dr": "-g", "local": "-g", "tunnel": "-i", "nat": "-m"}


def host(address, port, v6):
    return f"[{address}]:{port}" if v6 else f"{address}:{port}"


def service_args(service):
    """The service's part of both -A and -a lines: -t VIP:PORT, or -f MARK [-6]."""
    v6 = service["family"] == "ipv6"
    if service.get("fwmark"):
        return f"-f {service['fwmark']}" + (" -6" if v6 else "")
    return f"{PROTOCOLS[service['protocol']][0]} {host(service['address'], service['port'], v6)}"


def service_line(service):
    line = f"-A {service_args(service)} -s {service['scheduler']}"
    if service.get("persistent_timeout"):
        line += f" -p {service['persistent_timeout']}"
        prefix = service.get("persistent_netmask")
        if service["family"] == "ipv6" and prefix not in (None, 128):
            line += f" -M {prefix}"
        elif service["family"] == "ipv4" and prefix not in (None, 32):
            line += f" -M {ipaddress.ip_network(f'0.0.0.0/{prefix}').netmask}"
    if service.get("persistence_engine"):
        line += f" --pe {service['persistence_engine']}"
    if service.get("one_packet"):
        line += " -o"
    if service.get("scheduler_flags"):
        line += f" -b {','.join(service['scheduler_flags'])}"
    return line


def real_line(service, real):
    v6 = service["family"] == "ipv6"
    line = f"-a {service_args(service)} -r {host(real['address'], real['port'], v6)} {METHODS[real['forwarding_method']]} -w {real['weight']}"
    if real.get("tunnel_type"):
        line += f" --tun-type {real['tunnel_type']}"
        if real.get("tunnel_port"):
            line += f" --tun-port {real['tunnel_port']}"
        if real.get("tunnel_checksum"):
            line += f" --tun-{real['tunnel_checksum']}"
    if real.get("upper_threshold") or real.get("lower_threshold"):
        line += f" -x {real.get('upper_threshold') or 0} -y {real.get('lower_threshold') or 0}"
    return line


def service_order(service):
    address = ipaddress.ip_address(service["address"]) if service.get("address") else None
    protocol = PROTOCOLS[service["protocol"]][1] if service.get("protocol") else 0
    return (service.get("fwmark") or 0, service["family"] == "ipv6", protocol, int(address) if address else 0, service.get("port") or 0)


def ipvsadm_rules(services):
    if not isinstance(services, (list, tuple)) or not all(isinstance(s, dict) for s in services):
        raise AnsibleFilterError(f"ipvsadm_rules: expected lvs.dr.ipvs_info's services (a list of dicts), got {services!r}")
    lines = []
    try:
        for service in sorted(services, key=service_order):
            lines.append(service_line(service))
            reals = sorted(service.get("reals") or [], key=lambda r: (int(ipaddress.ip_address(r["address"])), r["port"]))
            lines += [real_line(service, real) for real in reals]
    except (KeyError, ValueError) as e:
        raise AnsibleFilterError(f"ipvsadm_rules: expected lvs.dr.ipvs_info's services, but an entry has no valid {e}") from e
    return "".join(line + "\n" for line in lines)


class FilterModule:
    def filters(self):
        return {"ipvsadm_rules": ipvsadm_rules}
