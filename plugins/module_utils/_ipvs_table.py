# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A whole IPVS table at once, for lvs.dr.ipvs_table: the wanted table from the module's
options, the writes that take the kernel's table to it, in the order they must go, and
their netlink requests.

PRIVATE to the collection: not a public API, it may change without notice.

A change is a tuple (what, action, service, real, before, fields): what is "service" or
"real", action "add", "set" or "delete", real None for a service's own change, before the
entry as the kernel had it, fields those that differ.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.lvs.dr.plugins.module_utils._ipvs import (
    IPVSInputError,
    describe_service,
    diff_entry,
    plan_entry,
    real_key,
    real_request,
    service_attributes,
    service_key,
    service_request,
    want_real,
    want_service,
)
from ansible_collections.lvs.dr.plugins.module_utils._ipvs_netlink import ATTR_SERVICE, nla


def wanted_table(services):
    """[(service, state, [(real, state)])], normalised; IPVSInputError names the entry and option."""
    wanted, seen = [], {}
    for i, params in enumerate(services):
        where = f"services[{i}]"
        try:
            service = want_service(params)
        except IPVSInputError as exc:
            raise IPVSInputError(f"{where}: {exc}") from None
        key = service_key(service)
        where = f"services[{i}] ({describe_service(key)})"
        if key in seen:
            raise IPVSInputError(f"{where}: listed twice, also as services[{seen[key]}]; list each service once")
        seen[key] = i
        reals, real_seen = [], {}
        for j, real_params in enumerate(params["reals"]):
            try:
                real = want_real(real_params, service)
            except IPVSInputError as exc:
                raise IPVSInputError(f"{where}.reals[{j}]: {exc}") from None
            if real_key(real) in real_seen:
                raise IPVSInputError(f"{where}.reals[{j}]: {real['address']}:{real['port']} is listed twice, also as reals[{real_seen[real_key(real)]}]")
            real_seen[real_key(real)] = j
            reals.append((real, real_params["state"]))
        wanted.append((service, params["state"], reals))
    return wanted


def protection(entries):
    """A predicate: is a kernel service protected by one of ENTRIES (the protected option)?"""
    rules = []
    for i, entry in enumerate(entries):
        given = {k: v for k, v in entry.items() if v is not None}
        if not given:
            raise IPVSInputError(f"protected[{i}]: empty; give address, port, protocol or fwmark")
        if "fwmark" in given and len(given) > 1:
            raise IPVSInputError(f"protected[{i}]: fwmark names a firewall-mark service; it goes without address, port and protocol")
        if "address" in given:
            try:
                given["address"] = ipaddress.ip_network(given["address"].strip(), strict=False)
            except ValueError:
                raise IPVSInputError(f"protected[{i}].address: '{entry['address']}' is not an address or a network such as 10.0.0.0/8") from None
        rules.append(given)

    def matches(service, rule):
        if "fwmark" in rule:
            return service["fwmark"] == rule["fwmark"]
        if service["fwmark"] is not None:
            return False
        address = ipaddress.ip_address(service["address"])
        return (
            ("address" not in rule or (address.version == rule["address"].version and address in rule["address"]))
            and rule.get("port", service["port"]) == service["port"]
            and rule.get("protocol", service["protocol"]) == service["protocol"]
        )

    return lambda service: any(matches(service, rule) for rule in rules)


def plan_table(current, wanted, exact, protected):
    """The writes that take CURRENT ({service key: (service, {real key: real})}) to WANTED, in the
    order they must go: [(what, action, service, real, before, fields)]; and the drains, the
    [(service, real)] to remove once they have no connections (their weight goes to 0 here)."""
    real_deletes, service_deletes, services, reals, drains = [], [], [], [], []
    listed = set()
    for service, state, wanted_reals in wanted:
        key = service_key(service)
        listed.add(key)
        before, current_reals = current.get(key, (None, {}))
        action = plan_entry(before, service, state)
        if action:
            (service_deletes if action == "delete" else services).append(
                ("service", action, service, None, before, diff_entry(before, None if action == "delete" else service))
            )
        if state == "absent":
            continue
        listed_reals = set()
        for real, real_state in wanted_reals:
            listed_reals.add(real_key(real))
            real_before = current_reals.get(real_key(real))
            if real_state == "drained":
                if real_before and real_before["weight"]:
                    reals.append(("real", "set", service, {**real_before, "weight": 0}, real_before, ["weight"]))
                if real_before:
                    drains.append((service, real_before))
                continue
            action = plan_entry(real_before, real, real_state)
            if action:
                change = ("real", action, service, real, real_before, diff_entry(real_before, None if action == "delete" else real))
                (real_deletes if action == "delete" else reals).append(change)
        if exact and before:
            real_deletes += [("real", "delete", service, r, r, diff_entry(r, None)) for k, r in current_reals.items() if k not in listed_reals]
    if exact:
        service_deletes += [
            ("service", "delete", s, None, s, diff_entry(s, None)) for key, (s, _reals) in current.items() if key not in listed and not protected(s)
        ]
    return real_deletes + service_deletes + services + reals, drains


def requests_of(changes):
    """The netlink (command, body) of each change; a service's identity is built once."""
    identities = {}
    out = []
    for what, action, service, real, _before, _fields in changes:
        if what == "service":
            out.append(service_request(action, service))
        else:
            key = service_key(service)
            if key not in identities:
                identities[key] = nla(ATTR_SERVICE, service_attributes(service, full=False))
            out.append(real_request(action, service, real, identities[key]))
    return out


def describe(change):
    what, action, service, real, _before, fields = change
    return {
        "action": action,
        "service": describe_service(service_key(service)),
        "real": f"{real['address']}:{real['port']}" if real else None,
        "fields": fields,
    }


def label(change):
    _what, _action, service, real, _before, _fields = change
    text = describe_service(service_key(service))
    return f"{text} -> {real['address']}:{real['port']}" if real else text


def deletion(service, real):
    return ("real", "delete", service, real, real, diff_entry(real, None))
