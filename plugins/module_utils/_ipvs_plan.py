# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The writes that take the kernel's IPVS table to the wanted one, and the one loop that makes
them: converge(). ipvs_service, ipvs_real and ipvs_table all go through it.

PRIVATE to the collection: not a public API, it may change without notice.

A wanted table is [(service, state, [(real, state)])], normalised (_ipvs_spec): state is
"present" or "absent" for a service this run manages, None for one it only names (ipvs_real's).
Changes are netlink SET in place, never delete + add, so connections survive them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import ipaddress
import os
import time

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.lvs.dr.plugins.module_utils._ipvs_kernel import IPVSTable, IPVSUnavailable, tunnel_types_supported
from ansible_collections.lvs.dr.plugins.module_utils._ipvs_netlink import NetlinkError
from ansible_collections.lvs.dr.plugins.module_utils._ipvs_spec import IPVSInputError, describe_service, real_key, service_key, want_real, want_service

RACE_ROUNDS = 3  # rounds of re-reading after writes that lost a race with another run
DRAIN_POLL = 1.0  # seconds between two reads of the connections of draining real servers


@dataclasses.dataclass
class Change:
    """One write: WHAT ("service" or "real") ACTION ("add", "set", "delete") of REAL (None for
    the service's own write) in SERVICE; BEFORE and AFTER the entry (None where there is none)."""

    what: str
    action: str
    service: dict
    real: dict | None
    before: dict | None
    after: dict | None

    @property
    def fields(self):
        return diff_entry(self.before, self.after)

    @property
    def label(self):
        text = describe_service(service_key(self.service))
        return f"{text} -> {self.real['address']}:{self.real['port']}" if self.real else text

    def describe(self):
        real = f"{self.real['address']}:{self.real['port']}" if self.real else None
        return {"action": self.action, "service": describe_service(service_key(self.service)), "real": real, "fields": self.fields}

    @property
    def write(self):
        return (self.what, self.action, self.service, self.real)


def diff_entry(before, after):
    """The fields whose values differ; a missing side differs in every field."""
    if not before or not after:
        return sorted(set(before or {}) | set(after or {}))
    return sorted(k for k in after if before.get(k) != after[k])


def plan_entry(before, want, state):
    """add, set, delete or None: the one write that takes BEFORE to the wanted state."""
    if state != "present":
        return "delete" if before else None
    if not before:
        return "add"
    return "set" if diff_entry(before, want) else None


def wanted_table(services):
    """ipvs_table's services option, normalised; IPVSInputError names the entry and option."""
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


def plan_table(current, wanted, table_state="merged", protected=None):
    """The changes that take CURRENT ({service key: (service, {real key: real})}) to WANTED under
    ipvs_table's TABLE_STATE (replaced: also remove the listed services' unlisted real servers;
    overridden: and the unlisted services, except PROTECTED ones), in the order they must go
    (deletions of real servers, of services, then services, then real servers); and the drains, the [(service, real)] to remove once they have no connections
    (their weight goes to 0 among the changes)."""
    real_deletes, service_deletes, services, reals, drains = [], [], [], [], []
    listed = set()
    for service, state, wanted_reals in wanted:
        key = service_key(service)
        listed.add(key)
        before, current_reals = current.get(key, (None, {}))
        action = plan_entry(before, service, state) if state else None
        if action:
            change = Change("service", action, service, None, before, service if action != "delete" else None)
            (service_deletes if action == "delete" else services).append(change)
        if state == "absent":
            continue
        service = before if state is None and before else service  # ipvs_real's: the kernel's
        for real, real_state in wanted_reals:
            real_before = current_reals.get(real_key(real))
            if real_state == "drained":
                if real_before and real_before["weight"]:
                    quiesced = {**real_before, "weight": 0}
                    reals.append(Change("real", "set", service, quiesced, real_before, quiesced))
                if real_before:
                    drains.append((service, real_before))
                continue
            action = plan_entry(real_before, real, real_state)
            if action == "delete":
                real_deletes.append(deletion(service, real_before))
            elif action:
                reals.append(Change("real", action, service, real, real_before, real))
        if table_state in ("replaced", "overridden") and before:
            keep = {real_key(r) for r, _state in wanted_reals}
            real_deletes += [deletion(service, r) for k, r in current_reals.items() if k not in keep]
    if table_state == "overridden":
        service_deletes += [Change("service", "delete", s, None, s, None) for key, (s, _reals) in current.items() if key not in listed and not protected(s)]
    return real_deletes + service_deletes + services + reals, drains


def deletion(service, real):
    return Change("real", "delete", service, real, real, None)


@dataclasses.dataclass
class Outcome:
    """What converge did (or would do in check mode): CHANGES, the writes made; DRAINED, a report
    per drained real server; CURRENT, the table as first read; RACES, writes that lost a race;
    SECONDS, the time spent reading, planning and applying. CURRENT is the last read when a
    race made converge read again: the entries as this run's writes found them."""

    changes: list
    drained: list
    current: dict
    races: int
    seconds: dict


def converge(module, table, wanted, table_state="merged", protected=None, drain_timeout=0, keys=None, current=None):
    """Take the kernel's table to WANTED (see plan_table; KEYS, the services to read the real
    servers of, None for all; CURRENT, the table if already read) and report it as an Outcome. A write refused because another run
    made the same change meanwhile (lost_race) is not an error: the table is read again and
    planned once more, up to RACE_ROUNDS times. Any other refusal fails the task, with what was
    applied. In check mode nothing is written."""
    started = time.perf_counter()
    current = table.read(keys) if current is None else current
    planned = time.perf_counter()
    changes, drains = plan_table(current, wanted, table_state, protected)
    check_writable(module, current, wanted)
    applying = time.perf_counter()
    applied, report, races = [], [], 0
    if module.check_mode:
        applied = changes + [deletion(service, real) for service, real in drains]
    else:
        try:
            for round_ in range(RACE_ROUNDS + 1):
                results = table.write([c.write for c in changes])
                applied += [c for c, code in zip(changes, results, strict=True) if code == 0]
                refused = [(c, code) for c, code in zip(changes, results, strict=True) if code]
                if not refused:
                    break
                if round_ == RACE_ROUNDS or not all(lost_race(c.what, c.action, code) for c, code in refused):
                    fail_refused(module, applied, refused, results.count(None))
                races += len(refused)
                current = table.read(keys)
                changes, drains = plan_table(current, wanted, table_state, protected)
            report = drain(module, table, drains, drain_timeout, applied)
        except NetlinkError as exc:  # no answer in the middle of the writes: some may be done
            module.fail_json(
                msg=f"{explain_read_error(exc)}; this run's writes may be partly applied (see applied): run it again to finish",
                changed=True,
                applied=[c.describe() for c in applied],
            )
    done = time.perf_counter()
    seconds = {"read": planned - started, "plan": applying - planned, "apply": done - applying}
    return Outcome(applied, report, current, races, seconds)


def check_writable(module, current, wanted):
    """Fail before any write for what the kernel would take wrongly: real servers for a service
    that does not exist (except in check mode, after ipvs_service's "would add"), and tunnel
    types an old kernel would silently make ipip."""
    for service, state, reals in wanted:
        missing = state is None and service_key(service) not in current
        if missing and not module.check_mode and any(s == "present" for _r, s in reals):
            module.fail_json(msg=f"the service {describe_service(service_key(service))} does not exist: create it first with lvs.dr.ipvs_service")
        odd = sorted({r["tunnel_type"] for r, s in reals if s == "present" and r.get("tunnel_type") in ("gue", "gre")})
        if odd and not tunnel_types_supported():
            module.fail_json(
                msg=f"tunnel_type: {', '.join(odd)} needs Linux 5.3 or later (GUE came in 5.2, GRE and the checksums in 5.3), and this "
                f"kernel ({os.uname().release}) would make the real server ipip instead; use tunnel_type ipip, or a newer kernel"
            )


def drain(module, table, drains, timeout, applied):
    """After the other writes (which set their weight to 0): wait, all within TIMEOUT seconds,
    until each of DRAINS [(service, real)] has no connections, then remove it; the deletions go
    on APPLIED, the run's writes. A report per real server. Time out: the task fails, they stay
    at weight 0."""
    started = time.monotonic()
    deadline = started + timeout
    report = {}
    for service, real in drains:
        name = {"service": describe_service(service_key(service)), "real": f"{real['address']}:{real['port']}"}
        report[id(real)] = {**name, "removed": False, "active_connections": 0, "inactive_connections": 0}
    pending = list(drains)
    while pending:
        empty, waiting = [], []
        for service in {id(s): s for s, _r in pending}.values():
            counts = {real_key(r): c for r, c in table.reals(service)}
            for real in (r for s, r in pending if s is service):
                left = counts.get(real_key(real))
                if left is None:  # gone: another run removed it
                    continue
                entry = report[id(real)]
                entry.update(active_connections=left["active_connections"], inactive_connections=left["inactive_connections"])
                (waiting if entry["active_connections"] + entry["inactive_connections"] else empty).append((service, real))
        results = table.write([("real", "delete", s, r) for s, r in empty])
        for (service, real), code in zip(empty, results, strict=True):
            if code and not lost_race("real", "delete", code):
                fail_refused(module, applied, [(deletion(service, real), code)], 0)
            if not code:
                applied.append(deletion(service, real))
                report[id(real)]["removed"] = True
        pending = waiting
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(DRAIN_POLL)
    for entry in report.values():
        entry["waited"] = round(time.monotonic() - started, 1)
    if pending:
        stuck = [report[id(r)] for _s, r in pending]
        module.fail_json(msg=timed_out_draining(timeout, stuck), changed=bool(applied), applied=[c.describe() for c in applied], drained=list(report.values()))
    return list(report.values())


def timed_out_draining(timeout, stuck):
    """The failure text when real servers still have connections at drain_timeout."""
    names = ", ".join(f"{e['real']} of {e['service']} ({e['active_connections']} active, {e['inactive_connections']} inactive connections)" for e in stuck)
    return (
        f"timed out after {timeout}s draining {names}: left in the table at weight 0 "
        "(raise drain_timeout, or use state=absent to remove it with its connections; for a persistent service set "
        "net.ipv4.vs.expire_quiescent_template=1, for UDP lower the udp timeout)"
    )


def fail_refused(module, applied, refused, not_sent):
    first, code = next(((c, k) for c, k in refused if not lost_race(c.what, c.action, k)), refused[0])
    module.fail_json(
        msg=f"{first.label}: {explain_netlink_error(first.what, first.action, code)}; "
        f"of {len(applied) + len(refused) + not_sent} writes {len(applied)} were applied, {len(refused)} refused "
        f"and {not_sent} not sent (see applied and refused)",
        changed=bool(applied),
        applied=[c.describe() for c in applied],
        refused=[{**c.describe(), "errno": code} for c, code in refused],
    )


def lost_race(what, action, code):
    """Whether the kernel refused ACTION on a WHAT (service, real) because another run changed the
    same entry meanwhile: it added it (EEXIST), or removed it or its service (ENOENT, ESRCH).
    (ENOENT for a service add or set is a scheduler the kernel could not load, not a race.)"""
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
    if code in (errno.EPERM, errno.EACCES):
        return f"the kernel refused to {action} the {what}: {os.strerror(code)}; IPVS needs CAP_NET_ADMIN: run the task as root (become: true)"
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


def explain_read_error(exc):
    """Why reading the table (or waiting for the kernel) failed, and the fix."""
    if exc.errno in (errno.EPERM, errno.EACCES):
        return (
            f"the kernel refused to read the IPVS table: {os.strerror(exc.errno)} (errno {exc.errno}); IPVS needs CAP_NET_ADMIN: "
            "run the task as root (become: true), or in a container give it NET_ADMIN"
        )
    if exc.errno == errno.ENOBUFS:
        return "the kernel dropped netlink messages (ENOBUFS: the socket's receive buffer overflowed); run again, and if it repeats raise net.core.rmem_max"
    return f"talking to the kernel's IPVS failed: {exc.strerror} (errno {exc.errno}); run again"


@contextlib.contextmanager
def open_table(module):
    """The kernel's table for MODULE; what keeps it from being read or written fails the task."""
    try:
        table = IPVSTable()
    except IPVSUnavailable as exc:
        msg = missing_required_lib(exc.missing_lib) if exc.missing_lib else str(exc)
        module.fail_json(msg=msg, exception=exc.exception)
    try:
        yield table
    except NetlinkError as exc:
        module.fail_json(msg=explain_read_error(exc), errno=exc.errno)
    finally:
        table.close()


def converge_entry(module, table, what, wanted, find, want, **kwargs):
    """ipvs_service's and ipvs_real's run: converge the one-service WANTED table, and report the
    one entry WANT (a service or real server, WHAT) as its result. FIND(table read) is that entry
    or None. BEFORE is the entry as this run's writes found it, AFTER as the kernel has it after
    them (in check mode: as it would)."""
    key = service_key(wanted[0])
    outcome = converge(module, table, [wanted], keys={key}, **kwargs)
    before = after = find(outcome.current)
    if outcome.changes:
        after = find(table.read({key})) if not module.check_mode else (None if outcome.changes[-1].action == "delete" else want)
    result = {
        "changed": bool(outcome.changes),
        "action": outcome.changes[-1].action if outcome.changes else "none",
        "changed_fields": diff_entry(before, after) if outcome.changes else [],
        what: after or {},
    }
    if module._diff:
        result["diff"] = {"before": before or {}, "after": after or {}}
    if outcome.drained:
        result["drained"] = outcome.drained
    return result
