# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The director role's resolution of its services, as one filter: a set_fact loop that appends
to its own result duplicates every entry when the role runs twice in a play, and copying the
list at each step makes it quadratic in the number of services."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError, AnsibleUndefinedVariable

DOCUMENTATION = r"""
name: resolve_services
author: lvs.dr developers (@lvs-dr)
version_added: 0.1.0
short_description: Fill in the director role's services with their scheduler and real servers
description:
  - Returns the list of services given, each with O(scheduler) where it names none (or null), and where it has no
    C(reals) (or null) with one real server per host of O(hosts). Nothing else is changed; the input is not modified.
  - Each service's health check (its C(check), keepalived's) is O(check) updated with the service's own (a UDP
    service that names none gets type V(none), since O(check) connects over TCP); without
    O(check) (a director that runs no health checks) the C(check) keys are dropped, so that lvs.dr.ipvs_table does not
    see them.
  - The lvs.dr.director role uses it to build lvs.dr.ipvs_table's O(lvs.dr.ipvs_table#module:services) from
    C(director_services).
options:
  _input:
    description: The services, as C(director_services) takes them (lvs.dr.ipvs_table's services).
    type: list
    elements: dict
    required: true
  scheduler:
    description: The scheduler of services that name none.
    type: str
    default: rr
  hosts:
    description:
      - The variables of the hosts that are the real servers of services that list none (the role passes those of
        C(director_realserver_group)'s hosts). Each gives a real server at its C(realserver_address), else at its
        C(ansible_facts.default_ipv4.address), else at V("") (the role then fails naming the variable to set).
    type: list
    elements: dict
    default: []
  check:
    description: The health check of services that have none (C(director_ha_check)); null drops the services' checks.
    type: dict
"""

EXAMPLES = r"""
- name: Services without reals get the realservers group's hosts
  ansible.builtin.set_fact:
    director_services_resolved: >-
      {{ director_services | lvs.dr.resolve_services(scheduler='wlc', hosts=groups['realservers'] | map('extract', hostvars)) }}
"""

RETURN = r"""
_value:
  description: The services, each with a scheduler and a list of real servers.
  type: list
  elements: dict
"""


def host_address(host):
    """A real server's address from its host's variables: realserver_address, else its default IPv4;
    "" when neither can be had (the role then fails naming realserver_address). A variable that
    templates from facts not gathered is undefined, not an error here."""
    try:
        address = host.get("realserver_address")
        if address is None:
            address = ((host.get("ansible_facts") or {}).get("default_ipv4") or {}).get("address", "")
    except AnsibleUndefinedVariable:
        return ""
    return address


def resolve_services(services, scheduler="rr", hosts=(), check=None):
    if not isinstance(services, (list, tuple)) or not all(isinstance(s, dict) for s in services):
        raise AnsibleFilterError(f"resolve_services: the services must be a list of dicts, got {services!r}")
    reals = [{"address": host_address(host)} for host in hosts]
    resolved = []
    for service in services:
        defaults = {"scheduler": scheduler, "reals": reals}
        entry = {**service, **{k: v for k, v in defaults.items() if service.get(k) is None}}
        own = entry.pop("check", None) or {}
        if not isinstance(own, dict):
            raise AnsibleFilterError(f"director_services: check must be a dict (type, path, status, ...), got {own!r}")
        if check is not None:
            # The default check connects over TCP: a UDP service gets none unless it names one.
            default = {**check, "type": "none"} if entry.get("protocol") == "udp" and not own else check
            entry["check"] = {**default, **own}
        resolved.append(entry)
    return resolved


class FilterModule:
    def filters(self):
        return {"resolve_services": resolve_services}
