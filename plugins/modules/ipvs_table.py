#!/usr/bin/python
# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ipvs_table
short_description: Converge many IPVS virtual services and their real servers in one task
version_added: 0.1.0
description:
  - Declares the kernel's IP Virtual Server (IPVS) table, virtual services (the options of M(lvs.dr.ipvs_service)) with
    their real servers (those of M(lvs.dr.ipvs_real)), in one task for tables of any size (10,000 services with 5 real
    servers each, say), in the convention of Ansible's network resource modules (O(state)).
  - Reads the whole table with one dump of the services and one of each service's real servers, compares it field by field
    with the list, and sends only the writes that differ (add, in-place set, delete), pipelined over one netlink socket.
    It never flushes the table, so connections to entries that stay are not disturbed. A second run sends nothing.
  - The states that write return RV(before) and RV(after), the table in the shape of O(services), and RV(commands), the
    writes in C(ipvsadm)'s words. O(state=gathered), then O(state=overridden) with what it returned, takes a table built
    by hand under Ansible without a write.
  - The whole list is checked before the first write; a bad entry fails the task with nothing changed.
  - The kernel has no transaction. The writes go in order (deletions of real servers, deletions of services, services,
    real servers); the first write the kernel refuses stops the run, and the failure lists what was applied and what was
    not sent.
author:
  - lvs.dr developers (@lvs-dr)
requirements:
  - Except for O(state=rendered) and O(state=parsed) - pyroute2 >= 0.9.5 on the managed host (it opens the netlink
    socket; Debian 12 ships 0.7.2, the P(lvs.dr.director#role) role installs a newer one in a virtualenv), and a kernel
    with IPVS (C(ip_vs) and the schedulers' modules loaded or loadable).
extends_documentation_fragment:
  - lvs.dr.attributes
options:
  services:
    description:
      - The virtual services, each with its real servers. A service may be listed once.
      - Required with O(state=merged), O(state=replaced), O(state=overridden) and O(state=rendered); refused with
        O(state=gathered) and O(state=parsed).
      - With O(state=deleted), only the identity of each service counts (O(services[].protocol), O(services[].address) and
        O(services[].port), or O(services[].fwmark)); left out or empty, every service of the table is deleted except the
        O(protected) ones.
    type: list
    elements: dict
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
        description: The scheduling algorithm, as in M(lvs.dr.ipvs_service); V(wlc) where left out (see the notes on V(merged)).
        type: str
        choices: [rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos]
      persistent_timeout:
        description: Persistence in seconds; V(0) (where left out) means not persistent. At most 2678400 (31 days, as C(ipvsadm)).
        type: int
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
        description: One-packet scheduling, for UDP and firewall-mark services; off where left out.
        type: bool
      state:
        description:
          - V(present) makes the service exist as described; V(absent) removes it with its real servers, with every O(state)
            that writes. O(state=rendered) leaves an absent service out; O(state=deleted) removes every listed service
            whatever its O(services[].state).
        type: str
        choices: [present, absent]
        default: present
      reals:
        description:
          - The service's real servers. With O(state=replaced) and O(state=overridden), real servers of this service that
            are not listed are removed. Refused with O(state=deleted), which removes the whole service.
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
            description: V(dr) (direct routing, where left out), V(nat) or V(tunnel), with the aliases of M(lvs.dr.ipvs_real).
            type: str
            choices: [dr, gatewaying, route, nat, masquerading, tunnel]
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
            description: The weight, 0 (quiesced) to 65535 (as C(ipvsadm)); V(1) where left out.
            type: int
          upper_threshold:
            description: The connection count above which it gets no new connections; V(0) (where left out) means none.
            type: int
          lower_threshold:
            description:
              - The connection count below which it gets new connections again; V(0) (where left out) means none.
              - Not above O(services[].reals[].upper_threshold).
            type: int
          state:
            description:
              - V(present) or V(absent), or V(drained) - weight 0 first, then removed once the kernel shows it has no
                connections left (at most O(drain_timeout) seconds after the other writes), as M(lvs.dr.ipvs_real) does.
                The same with every O(state) that writes; O(state=rendered) leaves absent and drained ones out (the end state).
            type: str
            choices: [present, absent, drained]
            default: present
  state:
    description:
      - V(merged) adds and changes the listed services and real servers, and leaves everything else alone.
      - V(replaced) also removes the real servers of each listed service that the service does not list; services that
        are not listed are left alone.
      - V(overridden) makes the table exactly the list - also removes every service that is not listed and not
        O(protected). An empty O(services) is refused, as it would empty the table (use V(deleted) for that).
      - V(deleted) removes the listed services with their real servers; without O(services), every service of the table
        except the O(protected) ones. An empty O(services) is refused (did a variable come out empty?).
      - V(gathered) reads the table and returns it as RV(gathered), in the shape of O(services); nothing is written.
      - V(rendered) returns O(services) as C(ipvsadm-restore)'s text in RV(rendered), offline - no pyroute2, no IPVS and no
        netlink socket needed.
      - V(parsed) reads C(ipvsadm -Sn)'s text from O(running_config) and returns it as RV(parsed), in the shape of
        O(services), offline.
    type: str
    choices: [merged, replaced, overridden, deleted, gathered, rendered, parsed]
    default: merged
  running_config:
    description:
      - With O(state=parsed) (and only there, where it is required), the text to parse - the rules as C(ipvsadm -Sn) (or
        C(ipvsadm-save -n)) prints them, one C(-A) line per service followed by C(-a) lines for its real servers; C(-x)
        and C(-y) (thresholds, which C(ipvsadm-save) leaves out) are read too. Blank lines and C(#) comments are skipped.
    type: str
  protected:
    description:
      - With O(state=overridden), and O(state=deleted) without O(services), services that are not removed although they
        are not listed (someone else owns them). A service is protected when it matches every key an entry gives.
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
  - With V(merged), an option that a listed service or real server already in the table leaves out keeps the kernel's value
    (a new scheduler drops the kernel's scheduler flags, a V(0) persistence its netmask and engine, a new forwarding method
    its tunnel options). Otherwise, as with C(ipvsadm), an option left out takes its default.
  - RV(gathered), RV(parsed), RV(before) and RV(after) give each service its identity and scheduler, and each real server
    its address, forwarding method and weight; other options only where they differ from their default. They are sorted
    by service (firewall mark, family, protocol, address, port) and real server (address, port).
  - C(ipvsadm -Sn) leaves the real servers' thresholds out, so O(state=parsed) of it gives thresholds 0; the director
    role's saved rules (filter P(lvs.dr.ipvsadm_rules#filter)) and RV(rendered) keep them, as C(-x) and C(-y).
  - Measured figures (an 11,000-entry table converged within 1.5 times C(ipvsadm-restore)) are in the collection's
    docs/performance.md.
  - Two runs at once against one host (two playbooks, say) both succeed. When the kernel refuses a write because the
    other run has just added or removed the same entry (C(EEXIST), C(ENOENT), C(ESRCH)), the table is read again and
    only what is still to do is written, up to three times; RV(changes) lists what this run wrote, and
    C(lost_races) in RV(metrics) counts the refused writes.
"""

EXAMPLES = r"""
- name: The seed's table - one VIP, two real servers in DR mode, round robin (other services left alone)
  lvs.dr.ipvs_table:
    state: merged
    services:
      - protocol: tcp
        address: 172.25.8.100
        port: 80
        scheduler: rr
        reals:
          - address: 172.25.8.2
          - address: 172.25.8.3

# A director built by hand: read its table once, keep it under version control (host_vars), then converge it.
- name: Read the table a director was given by hand (handmade.gathered is what lvs_services below takes)
  lvs.dr.ipvs_table:
    state: gathered
  register: handmade

- name: From now on, exactly these services (the first run writes nothing); leave 10.99.0.0/16's (managed elsewhere) alone
  lvs.dr.ipvs_table:
    state: overridden
    protected: [{address: 10.99.0.0/16}]
    services: "{{ lvs_services }}"

- name: Give the HTTP service exactly these real servers; other services stay as they are
  lvs.dr.ipvs_table:
    state: replaced
    services:
      - address: 172.25.8.100
        port: 80
        scheduler: rr
        reals: [{address: 172.25.8.3}, {address: 172.25.8.4}]

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

- name: Remove two services with their real servers (their identity is enough)
  lvs.dr.ipvs_table:
    state: deleted
    services: [{address: 172.25.8.100, port: 443}, {fwmark: 7}]

- name: Empty the table except 10.99.0.0/16's services
  lvs.dr.ipvs_table:
    state: deleted
    protected: [{address: 10.99.0.0/16}]

- name: Write the wanted table as ipvsadm-restore's input, offline (no IPVS needed where it runs)
  lvs.dr.ipvs_table:
    state: rendered
    services: "{{ lvs_services }}"
  delegate_to: localhost
  register: rules

- name: Read a director's saved rules (ipvsadm -Sn) back as services, offline
  lvs.dr.ipvs_table:
    state: parsed
    running_config: "{{ lookup('ansible.builtin.file', 'director1-ipvsadm.rules') }}"
  delegate_to: localhost
  register: saved
"""

RETURN = r"""
before:
  description: The table as this run found it, in the shape of O(services) (options at their default left out, see the notes).
  returned: when O(state) is V(merged), V(replaced), V(overridden) or V(deleted)
  type: list
  elements: dict
  sample: [{protocol: tcp, address: 172.25.8.100, port: 80, scheduler: rr, reals: [{address: 172.25.8.2, forwarding_method: dr, weight: 1}]}]
after:
  description: The table after this run's writes (in check mode, those it would make), in the shape of O(services).
  returned: when O(state) is V(merged), V(replaced), V(overridden) or V(deleted)
  type: list
  elements: dict
  sample: [{protocol: tcp, address: 172.25.8.100, port: 80, scheduler: rr, reals: [{address: 172.25.8.3, forwarding_method: dr, weight: 2}]}]
commands:
  description:
    - The writes this run made (in check mode, would make), in order, each as the C(ipvsadm) command that does the same -
      C(-A)/C(-E)/C(-D) for services, C(-a)/C(-e)/C(-d) for real servers. Empty when nothing is to do.
  returned: when O(state) is V(merged), V(replaced), V(overridden) or V(deleted)
  type: list
  elements: str
  sample: ["-A -t 172.25.8.100:80 -s rr", "-a -t 172.25.8.100:80 -r 172.25.8.2:80 -g -w 1", "-e -t 172.25.8.100:80 -r 172.25.8.3:80 -g -w 2"]
gathered:
  description: The kernel's table, in the shape of O(services) - give it back as O(services) and nothing changes.
  returned: when O(state=gathered)
  type: list
  elements: dict
  sample: [{fwmark: 7, family: ipv6, scheduler: sh, scheduler_flags: [sh-port], reals: [{address: "2001:db8::2", forwarding_method: dr, weight: 1}]}]
rendered:
  description:
    - O(services) as C(ipvsadm-restore)'s input, one line each, each ending in a newline; sorted as RV(gathered), with the
      thresholds as C(-x) and C(-y); the same text as the director role's saved rules for that table.
  returned: when O(state=rendered)
  type: str
  sample: "-A -t 172.25.8.100:80 -s rr\n-a -t 172.25.8.100:80 -r 172.25.8.2:80 -g -w 1\n"
parsed:
  description: O(running_config) in the shape of O(services).
  returned: when O(state=parsed)
  type: list
  elements: dict
  sample: [{protocol: udp, address: 172.25.8.100, port: 53, scheduler: rr, reals: [{address: 172.25.8.2, port: 5353, forwarding_method: nat, weight: 1}]}]
summary:
  description: How many writes of each kind the run made (or would make in check mode).
  returned: when O(state) is V(merged), V(replaced), V(overridden) or V(deleted)
  type: dict
  sample: {services: {add: 0, set: 0, delete: 0}, reals: {add: 1, set: 1, delete: 0}}
changes:
  description: Each write, as in RV(commands) - the action, the service, the real server (or null) and the fields that differed.
  returned: when O(state) is V(merged), V(replaced), V(overridden) or V(deleted)
  type: list
  elements: dict
  sample: [{action: set, service: tcp 172.25.8.100:80, real: "172.25.8.2:80", fields: [weight]}]
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
  returned: when O(state) is V(merged), V(replaced), V(overridden) or V(deleted)
  type: dict
  sample: {read_seconds: 0.41, plan_seconds: 0.05, apply_seconds: 0.0, total_seconds: 0.9, netlink_requests: 1001,
           netlink_writes: 0, lost_races: 0, peak_rss_kib: 48212, entries: 11000}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvs.dr.plugins.module_utils._ipvs_resource import REQUIRED_IF, STATES, run_state
from ansible_collections.lvs.dr.plugins.module_utils._ipvs_spec import DRAIN_TIMEOUT, PROTECTED, REAL, SERVICE, argument_spec, identity_spec, without_defaults


def module_spec():
    identity = identity_spec()
    reals = dict(type="list", elements="dict", default=[], options=without_defaults(argument_spec(REAL)))
    service = dict(identity.pop("argument_spec"), **without_defaults(argument_spec(SERVICE)), reals=reals)
    return dict(
        services=dict(type="list", elements="dict", options=service, **identity),
        state=dict(type="str", choices=STATES, default="merged"),
        running_config=dict(type="str"),
        protected=dict(type="list", elements="dict", default=[], options=argument_spec(PROTECTED)),
        drain_timeout=argument_spec({"drain_timeout": DRAIN_TIMEOUT})["drain_timeout"],
    )


def main():
    required_if = [("state", state, [option]) for state, option in REQUIRED_IF]
    module = AnsibleModule(argument_spec=module_spec(), required_if=required_if, supports_check_mode=True)
    module.exit_json(**run_state(module))


if __name__ == "__main__":
    main()
