#!/usr/bin/python
# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ipvs_table
short_description: Converge many IPVS virtual services and their real servers in one task
version_added: 0.1.0
description:
  - Makes the kernel's IP Virtual Server (IPVS) table hold the listed virtual services with exactly the listed real
    servers, in one task, for tables of any size (10,000 services with 5 real servers each, for example).
  - Reads the whole table with one dump of the services and one of each service's real servers, compares it field by field
    with the list, and sends only the writes that differ (add, in-place set, delete), pipelined over one netlink socket.
    It never flushes the table, so connections to entries that stay are not disturbed. A second run sends nothing.
  - Each service takes the options of M(lvs.dr.ipvs_service), each real server those of M(lvs.dr.ipvs_real).
  - With O(state=exact) it also removes services that are not listed (except O(protected) ones) and real servers that a
    listed service does not list.
  - The whole list is checked before the first write; a bad entry fails the task with nothing changed.
  - The kernel has no transaction. The writes go in order (deletions of real servers, deletions of services, services,
    real servers); the first write the kernel refuses stops the run, and the failure lists what was applied and what was
    not sent.
author:
  - lvs.dr developers (@lvs-dr)
requirements:
  - pyroute2 >= 0.9.5 on the managed host (it opens the netlink socket). Debian 12 ships 0.7.2; the P(lvs.dr.director#role) role
    installs a newer one in a virtualenv.
  - A kernel with IPVS (C(ip_vs) and the schedulers' modules loaded or loadable).
extends_documentation_fragment:
  - lvs.dr.attributes
options:
  services:
    description:
      - The virtual services, each with its real servers. A service may be listed once.
    type: list
    elements: dict
    required: true
    suboptions:
      protocol:
        description: The protocol of an address service; defaults to V(tcp).
        type: str
        choices: [tcp, udp, sctp]
      address:
        description: The virtual IP address (VIP), IPv4 or IPv6. Give either O(services[].address) and O(services[].port), or O(services[].fwmark).
        type: str
        aliases: [vip]
      port:
        description: The service port, 1 to 65535.
        type: int
      fwmark:
        description: A firewall-mark service instead of an address one, 1 to 4294967295.
        type: int
      family:
        description: The address family of a firewall-mark service (default V(ipv4)); with an address it must match it.
        type: str
        choices: [ipv4, ipv6]
      scheduler:
        description: The scheduling algorithm, as in M(lvs.dr.ipvs_service).
        type: str
        choices: [rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos]
        default: wlc
      persistent_timeout:
        description: Persistence in seconds; V(0) means not persistent. At most 2678400 (31 days, as C(ipvsadm)).
        type: int
        default: 0
      persistent_netmask:
        description: The persistence mask, a netmask or a prefix length (IPv6 a prefix length).
        type: str
      persistence_engine:
        description: A persistence engine; needs O(services[].persistent_timeout).
        type: str
        choices: [sip]
      scheduler_flags:
        description: Scheduler flags; V(sh-*) with scheduler V(sh), V(mh-*) with V(mh).
        type: list
        elements: str
        choices: [sh-fallback, sh-port, mh-fallback, mh-port]
      one_packet:
        description: One-packet scheduling, for UDP and firewall-mark services.
        type: bool
        default: false
      state:
        description: V(present) makes the service exist as described; V(absent) removes it with its real servers.
        type: str
        choices: [present, absent]
        default: present
      reals:
        description:
          - The service's real servers. With O(state=exact), real servers of this service that are not listed are removed.
        type: list
        elements: dict
        default: []
        suboptions:
          address:
            description: The real server's address.
            type: str
            required: true
            aliases: [rip]
          port:
            description: Its port; defaults to the service port. DR and tunnel forwarding need the service port.
            type: int
          forwarding_method:
            description: V(dr) (direct routing), V(nat) or V(tunnel), with the aliases of M(lvs.dr.ipvs_real).
            type: str
            choices: [dr, gatewaying, route, nat, masquerading, tunnel]
            default: dr
          tunnel_type:
            description: With O(services[].reals[].forwarding_method=tunnel), V(ipip) (default), V(gue) or V(gre).
            type: str
            choices: [ipip, gue, gre]
          tunnel_port:
            description: The UDP port of a V(gue) tunnel.
            type: int
          tunnel_checksum:
            description: The checksum mode of a V(gue) or V(gre) tunnel.
            type: str
            choices: [nocsum, csum, remcsum]
          weight:
            description: The weight, 0 (quiesced) to 65535 (as C(ipvsadm)).
            type: int
            default: 1
          upper_threshold:
            description: The connection count above which it gets no new connections; V(0) means none.
            type: int
            default: 0
          lower_threshold:
            description: The connection count below which it gets new connections again; V(0) means none. Not above O(services[].reals[].upper_threshold).
            type: int
            default: 0
          state:
            description:
              - V(present) or V(absent), or V(drained) - weight 0 first, then removed once the kernel shows it has no
                connections left (at most O(drain_timeout) seconds after the other writes), as M(lvs.dr.ipvs_real) does.
            type: str
            choices: [present, absent, drained]
            default: present
  state:
    description:
      - V(present) adds and changes the listed services and real servers and leaves everything else alone.
      - V(exact) also removes every service that is not listed and not O(protected), and every real server of a listed
        service that the service does not list. An empty O(services) with V(exact) is refused, as it would empty the table.
    type: str
    choices: [present, exact]
    default: present
  protected:
    description:
      - With O(state=exact), services that are not removed although they are not listed (someone else owns them). A service
        is protected when it matches every key an entry gives.
    type: list
    elements: dict
    default: []
    suboptions:
      address:
        description: An address or a network (CIDR) that the service's address is in.
        type: str
      port:
        description: The service port.
        type: int
      protocol:
        description: The service protocol.
        type: str
        choices: [tcp, udp, sctp]
      fwmark:
        description: A firewall-mark service's mark.
        type: int
  drain_timeout:
    description:
      - How long real servers with O(services[].reals[].state=drained) may take to lose their connections, in seconds, all
        together. When it runs out the task fails and they stay in the table at weight 0.
    type: int
    default: 300
seealso:
  - module: lvs.dr.ipvs_service
  - module: lvs.dr.ipvs_real
  - module: lvs.dr.ipvs_info
notes:
  - Options left out take their defaults, as with C(ipvsadm); the table is made exactly as described.
  - Measured figures (an 11,000-entry table converged within 1.5 times C(ipvsadm-restore)) are in the collection's
    docs/performance.md.
  - Two runs at once against one host (two playbooks, say) both succeed. When the kernel refuses a write because the
    other run has just added or removed the same entry (C(EEXIST), C(ENOENT), C(ESRCH)), the table is read again and
    only what is still to do is written, up to three times; RV(changes) lists what this run wrote, and
    C(lost_races) in RV(metrics) counts the refused writes.
"""

EXAMPLES = r"""
- name: The seed's table - one VIP, two real servers in DR mode, round robin
  lvs.dr.ipvs_table:
    services:
      - protocol: tcp
        address: 172.25.8.100
        port: 80
        scheduler: rr
        reals:
          - address: 172.25.8.2
          - address: 172.25.8.3

- name: Exactly these services; leave the ones of 10.99.0.0/16 (managed elsewhere) alone
  lvs.dr.ipvs_table:
    state: exact
    protected:
      - address: 10.99.0.0/16
    services: "{{ lvs_services }}"

- name: Take a real server out without dropping a connection
  lvs.dr.ipvs_table:
    services:
      - address: 172.25.8.100
        port: 80
        scheduler: rr
        reals:
          - address: 172.25.8.2
            state: drained
          - address: 172.25.8.3
    drain_timeout: 600
"""

RETURN = r"""
summary:
  description: How many writes of each kind the run made (or would make in check mode).
  returned: always
  type: dict
  sample: {services: {add: 0, set: 0, delete: 0}, reals: {add: 1, set: 1, delete: 0}}
changes:
  description: Each write, in the order sent - the action, the service, the real server (for real server writes) and the fields that differed.
  returned: always
  type: list
  elements: dict
  sample:
    - {action: set, service: tcp 172.25.8.100:80, real: "172.25.8.2:80", fields: [weight]}
drained:
  description:
    - The real servers drained - whether this run removed them (false when another run removed one during the wait), how
      long the wait took and the connections left.
  returned: when a real server was drained
  type: list
  elements: dict
  sample: [{service: tcp 172.25.8.100:80, real: "172.25.8.2:80", removed: true, waited: 4.0, active_connections: 0, inactive_connections: 0}]
applied:
  description:
    - When the task fails after writing (a refused write, a drain that timed out, no answer from the kernel) - the writes
      this run made (as in RV(changes)).
  returned: failure, after a write
  type: list
  elements: dict
refused:
  description: When the kernel refused a write - the writes it refused, each with the kernel's C(errno).
  returned: failure, after a refused write
  type: list
  elements: dict
  sample: [{action: add, service: tcp 172.25.8.100:81, real: null, fields: [scheduler], errno: 2}]
metrics:
  description:
    - The run's own figures - seconds to read the table, to plan the writes and to apply them, and in all since the module
      the process started (Python's and Ansible's start-up included, to 10 ms); netlink requests (dumps and writes) and writes the kernel carried out;
      the process's peak memory in KiB; the entries in the wanted table; C(lost_races), writes refused because another
      run had made the same change first (see the notes).
  returned: always
  type: dict
  sample: {read_seconds: 0.41, plan_seconds: 0.05, apply_seconds: 0.0, total_seconds: 0.9, netlink_requests: 1001,
           netlink_writes: 0, lost_races: 0, peak_rss_kib: 48212, entries: 11000}
"""

import os
import resource
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvs.dr.plugins.module_utils._ipvs_plan import converge, open_table, protection, wanted_table
from ansible_collections.lvs.dr.plugins.module_utils._ipvs_spec import (
    DRAIN_TIMEOUT,
    PROTECTED,
    REAL,
    SERVICE,
    IPVSInputError,
    argument_spec,
    check_range,
    identity_spec,
)


def module_spec():
    identity = identity_spec()
    service = dict(identity.pop("argument_spec"), **argument_spec(SERVICE), reals=dict(type="list", elements="dict", default=[], options=argument_spec(REAL)))
    return dict(
        services=dict(type="list", elements="dict", required=True, options=service, **identity),
        state=dict(type="str", choices=["present", "exact"], default="present"),
        protected=dict(type="list", elements="dict", default=[], options=argument_spec(PROTECTED)),
        drain_timeout=argument_spec({"drain_timeout": DRAIN_TIMEOUT})["drain_timeout"],
    )


def seconds_since_exec():
    """How long this process has run: Python's and Ansible's start-up, the imports and the work."""
    with open("/proc/self/stat") as stat:
        start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
    return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")


def main():
    module = AnsibleModule(argument_spec=module_spec(), supports_check_mode=True)
    params = module.params
    try:
        wanted = wanted_table(params["services"])
        check_range("drain_timeout", params["drain_timeout"], DRAIN_TIMEOUT)
        if params["state"] == "exact" and not wanted:
            raise IPVSInputError(
                "services: empty, and state=exact would delete every service in the table (did a variable come out empty?); "
                "to empty the table on purpose, list each service with state: absent"
            )
        if params["protected"] and params["state"] != "exact":
            raise IPVSInputError("protected: only state=exact removes services, so protected needs state: exact")
        protected = protection(params["protected"])
    except IPVSInputError as exc:
        module.fail_json(msg=str(exc))

    with open_table(module) as table:
        outcome = converge(module, table, wanted, params["state"] == "exact", protected, params["drain_timeout"])
        requests, writes = table.requests, table.writes
    summary = {what: {a: 0 for a in ("add", "set", "delete")} for what in ("services", "reals")}
    before, after = {}, {}
    for change in outcome.changes:
        summary[f"{change.what}s"][change.action] += 1
        if change.before:
            before.setdefault(change.label, change.before)
        after[change.label] = change.after  # the last write to an entry says where it ends
    result = dict(
        changed=bool(outcome.changes),
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
    module.exit_json(**result)


if __name__ == "__main__":
    main()
