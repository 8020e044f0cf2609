# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""ipvs_table's states, after Ansible's network resource modules: merged, replaced, overridden
and deleted converge the kernel's table (through _ipvs_plan.converge), gathered reads it, and
rendered and parsed turn the services option into ipvsadm-restore's text and back, offline.

PRIVATE to the collection: not a public API, it may change without notice.

Every state speaks the services option's own shape (_ipvs_ipvsadm.as_services): gathered,
parsed, before and after can be given back as services, and make no write.
"""

from __future__ import annotations

import os
import resource
import time

from ansible_collections.lvs.dr.plugins.module_utils._ipvs_ipvsadm import as_services, command, parse, render
from ansible_collections.lvs.dr.plugins.module_utils._ipvs_plan import converge, open_table, protection, wanted_table
from ansible_collections.lvs.dr.plugins.module_utils._ipvs_spec import (
    DRAIN_TIMEOUT,
    FORWARDING_ALIASES,
    IPVSInputError,
    check_range,
    real_key,
    real_options,
    service_key,
    service_key_from,
    service_options,
    want_real,
)

STATES = ["merged", "replaced", "overridden", "deleted", "gathered", "rendered", "parsed"]
# required_if of the module's argument spec: what each state needs.
REQUIRED_IF = [(state, "services") for state in ("merged", "replaced", "overridden", "rendered")] + [("parsed", "running_config")]


def check_options(params):
    """IPVSInputError for an option the state does not take, naming it and the fix (what a
    state needs, the argument spec's required_if says)."""
    state, services = params["state"], params["services"]
    if state in ("gathered", "parsed") and services is not None:
        source = "the kernel's table" if state == "gathered" else "running_config"
        raise IPVSInputError(
            f"services: state={state} reads {source} and takes no services; leave services out, or use merged, replaced or overridden to change the table"
        )
    if state != "parsed" and params["running_config"] is not None:
        raise IPVSInputError(f"running_config: only state=parsed reads it, not state={state}; leave running_config out, or set state: parsed")
    if state == "deleted" and services == []:
        raise IPVSInputError(
            "services: empty, and state=deleted with no services would delete every service in the table (did a variable come out empty?); "
            "to empty the table on purpose, leave services out"
        )
    if state == "overridden" and not services:
        raise IPVSInputError(
            "services: empty, and state=overridden would delete every service in the table (did a variable come out empty?); "
            "to empty the table on purpose, use state: deleted without services"
        )
    if params["protected"] and state not in ("overridden", "deleted"):
        raise IPVSInputError(
            f"protected: only state=overridden and state=deleted remove services that are not listed, so protected needs one of them, not {state}"
        )
    for i, service in enumerate((services or []) if state == "deleted" else []):
        if service["reals"]:
            raise IPVSInputError(
                f"services[{i}].reals: state=deleted removes each listed service with all its real servers; leave reals out "
                "(to remove some real servers of a service, give them state: absent with state: merged)"
            )
    check_range("drain_timeout", params["drain_timeout"], DRAIN_TIMEOUT)


def run_state(module):
    """The result of ipvs_table for MODULE's parameters."""
    params, state = module.params, module.params["state"]
    try:
        check_options(params)
        if state == "parsed":
            try:
                return {"changed": False, "parsed": parse(params["running_config"])}
            except IPVSInputError as exc:
                raise IPVSInputError(f"running_config: {exc}") from None
        wanted = wanted_table(params["services"] or [])
        protected = protection(params["protected"])
    except IPVSInputError as exc:
        module.fail_json(msg=str(exc))
    if state == "rendered":  # the end state: what is absent or drained is not in it
        present = [{**service, "reals": [r for r, s in reals if s == "present"]} for service, s, reals in wanted if s == "present"]
        return {"changed": False, "rendered": render(present)}
    with open_table(module) as table:
        if state == "gathered":
            return {"changed": False, "gathered": as_services([(s, list(reals.values())) for s, reals in table.read().values()])}
        current = None
        if state == "merged":  # the options an entry leaves out are the kernel's
            current = table.read()
            try:
                wanted = wanted_table(merged_services(params["services"], current))
            except IPVSInputError as exc:
                module.fail_json(msg=str(exc))
        plan_state = state
        if state == "deleted":
            # Listed: each goes, whatever else it says; none listed: every service (overridden with nothing).
            wanted = [(service, "absent", []) for service, _state, _reals in wanted]
            plan_state = "deleted" if wanted else "overridden"
        outcome = converge(module, table, wanted, plan_state, protected, params["drain_timeout"], current=current)
        requests, writes = table.requests, table.writes
    return report(module, wanted, outcome, requests, writes)


def merged_services(services, current):
    """SERVICES (the option) with what a listed entry leaves out taken from its entry in CURRENT
    (the kernel's table, read), so that merged changes only the options given. Options that go
    with another one are not kept when that one changes."""
    out = []
    for params in services:
        found = current.get(service_key_from(params))
        if found is None or params["state"] != "present":
            out.append(params)
            continue
        service, reals = found
        merged = overlay(service_options(service), params, service_ties)
        merged["reals"] = []
        for real_params in params["reals"]:
            real = reals.get(real_key(want_real({**real_params, "state": "absent"}, service)))
            keep = real is not None and real_params["state"] == "present"
            merged["reals"].append(overlay(real_options(real, service), real_params, real_ties) if keep else real_params)
        out.append(merged)
    return out


def overlay(kernel, params, ties):
    """PARAMS, with the options they leave out (None) taken from KERNEL, less those TIES(given, kernel) names."""
    given = {k: v for k, v in params.items() if v is not None}
    dropped = ties(given, kernel)
    return {**{k: v for k, v in kernel.items() if k not in dropped}, **given}


def service_ties(given, kernel):
    dropped = set()
    if given.get("scheduler", kernel["scheduler"]) != kernel["scheduler"]:
        dropped.add("scheduler_flags")  # sh-* go with sh, mh-* with mh
    if given.get("persistent_timeout") == 0:
        dropped |= {"persistent_netmask", "persistence_engine"}  # they need persistence
    return dropped


def real_ties(given, kernel):
    method = given.get("forwarding_method", kernel["forwarding_method"])
    return {"tunnel_type", "tunnel_port", "tunnel_checksum"} if FORWARDING_ALIASES.get(method, method) != kernel["forwarding_method"] else set()


def apply_changes(current, changes):
    """CURRENT ({service key: (service, {real key: real})}) with CHANGES made. Each change
    gives its entry's whole end state, so making one the kernel already shows changes nothing."""
    table = {key: (service, dict(reals)) for key, (service, reals) in current.items()}
    for change in changes:
        key = service_key(change.service)
        if change.what == "service":
            if change.action == "delete":
                table.pop(key, None)
            else:
                table[key] = (change.after, table.get(key, (None, {}))[1])
        elif key in table:
            reals = table[key][1]
            if change.action == "delete":
                reals.pop(real_key(change.real), None)
            else:
                reals[real_key(change.real)] = change.after
    return table


def services_of(table):
    return as_services([(service, list(reals.values())) for service, reals in table.values()])


def report(module, wanted, outcome, requests, writes):
    """A writing state's result: before and after (the services option's shape), the commands,
    and the writes counted, listed and timed."""
    summary = {what: {a: 0 for a in ("add", "set", "delete")} for what in ("services", "reals")}
    before, after = {}, {}
    for change in outcome.changes:
        summary[f"{change.what}s"][change.action] += 1
        if change.before:
            before.setdefault(change.label, change.before)
        after[change.label] = change.after  # the last write to an entry says where it ends
    result = dict(
        changed=bool(outcome.changes),
        before=services_of(outcome.current),
        after=services_of(apply_changes(outcome.current, outcome.changes)),
        commands=[command(c.what, c.action, c.service, c.real, c.before) for c in outcome.changes],
        summary=summary,
        changes=[c.describe() for c in outcome.changes],
        metrics={
            **{f"{k}_seconds": round(v, 3) for k, v in outcome.seconds.items()},
            "total_seconds": round(seconds_since_exec(), 2),
            "netlink_requests": requests,
            "netlink_writes": writes,
            "lost_races": outcome.races,
            "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "entries": sum(1 + len(reals) for _s, _state, reals in wanted),
        },
    )
    if outcome.drained:
        result["drained"] = outcome.drained
    if module._diff:
        result["diff"] = {"before": before, "after": {k: v for k, v in after.items() if v}}
    return result


def seconds_since_exec():
    """How long this process has run: Python's and Ansible's start-up, the imports and the work."""
    with open("/proc/self/stat") as stat:
        start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
    return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")
