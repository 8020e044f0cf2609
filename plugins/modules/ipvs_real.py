#!/usr/bin/python
# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ipvs_real
short_description: Manage a real server of an IPVS virtual service
version_added: 0.1.0
description:
  - Adds, changes, drains or removes one real server (destination) of an existing IPVS virtual service, the equivalent of
    C(ipvsadm -a), C(ipvsadm -e) and C(ipvsadm -d).
  - Reads the table over generic netlink and compares field by field, so a second run changes nothing.
  - Weight, thresholds and forwarding method are changed in place (netlink SET), never by delete and add, so the real
    server's connections survive the change.
  - The service must exist (create it with M(lvs.dr.ipvs_service)); a missing service fails the task.
author:
  - lvs.dr developers (!UNKNOWN)
requirements:
  - pyroute2 >= 0.9.5 on the managed host (Debian 12 ships 0.7.2, which has no IPVS API; install a newer one with pip).
  - A kernel with IPVS.
extends_documentation_fragment:
  - lvs.dr.attributes
options:
  protocol:
    description: The protocol of the service. Defaults to V(tcp) when O(service_address) is given.
    type: str
    choices: [tcp, udp, sctp]
  service_address:
    description: The service's virtual IP address. Give either O(service_address) and O(service_port), or O(fwmark).
    type: str
    aliases: [vip]
  service_port:
    description: The service's port.
    type: int
  fwmark:
    description: The firewall mark of a firewall-mark service.
    type: int
  family:
    description: The address family of a firewall-mark service; defaults to V(ipv4).
    type: str
    choices: [ipv4, ipv6]
  address:
    description: The real server's IP address (RIP).
    type: str
    required: true
    aliases: [rip]
  port:
    description:
      - The real server's port. Defaults to the service's port.
      - V(dr) and V(tunnel) forwarding do no port mapping, so with them a port other than the service's fails the task.
    type: int
  forwarding_method:
    description:
      - How the director forwards packets to this server. V(dr) is direct routing (C(ipvsadm -g)), also called
        V(gatewaying) or V(route); V(nat) is masquerading (C(-m)), also V(masquerading); V(tunnel) is IP tunnelling (C(-i)).
    type: str
    choices: [dr, gatewaying, route, nat, masquerading, tunnel]
    default: dr
  tunnel_type:
    description: The tunnel encapsulation, with O(forwarding_method=tunnel). Defaults to V(ipip) there.
    type: str
    choices: [ipip, gue, gre]
  tunnel_port:
    description: The real server's GUE port, with O(tunnel_type=gue) (required there).
    type: int
  tunnel_checksum:
    description: Tunnel checksums, with O(tunnel_type=gue) or V(gre). Defaults to V(nocsum) there.
    type: str
    choices: [nocsum, csum, remcsum]
  weight:
    description: The server's weight, V(0) (quiesced - no new connections) to 2147483647.
    type: int
    default: 1
  upper_threshold:
    description: Stop sending new connections above this many; V(0) is no limit.
    type: int
    default: 0
  lower_threshold:
    description: Resume below this many connections after the upper threshold was hit; V(0) is unset.
    type: int
    default: 0
  state:
    description:
      - V(present) makes the real server exist with these settings; V(absent) removes it at once.
      - V(drained) sets its weight to 0, waits until the kernel shows no active and no inactive connections for it (at most
        O(drain_timeout) seconds), then removes it. When the time runs out the task fails, says how many connections were
        left, and leaves the server in the table at weight 0.
    type: str
    choices: [present, absent, drained]
    default: present
  drain_timeout:
    description:
      - How long O(state=drained) waits for the connections to end, in seconds. TCP connections stay listed as inactive for
        the kernel's FIN_WAIT/TIME_WAIT timeouts (C(ipvsadm --set)) after they close.
    type: int
    default: 300
seealso:
  - module: lvs.dr.ipvs_service
  - module: lvs.dr.ipvs_info
notes:
  - Options left out take their defaults, as with C(ipvsadm -a); the module makes the real server exactly as described.
"""

EXAMPLES = r"""
- name: Add a real server in direct-routing mode (the seed's ipvsadm -a -t 172.25.8.100:80 -r 172.25.8.2:80 -g)
  lvs.dr.ipvs_real:
    protocol: tcp
    service_address: 172.25.8.100
    service_port: 80
    address: 172.25.8.2
    forwarding_method: dr

- name: Quiesce it - no new connections, the open ones go on
  lvs.dr.ipvs_real:
    service_address: 172.25.8.100
    service_port: 80
    address: 172.25.8.2
    weight: 0

- name: Take it out once its connections have ended (at most 10 minutes)
  lvs.dr.ipvs_real:
    service_address: 172.25.8.100
    service_port: 80
    address: 172.25.8.2
    state: drained
    drain_timeout: 600
"""

RETURN = r"""
real:
  description: The real server as the kernel has it after the run (in check mode, as it would be); empty when removed.
  returned: always
  type: dict
  sample:
    address: 172.25.8.2
    port: 80
    forwarding_method: dr
    weight: 1
    upper_threshold: 0
    lower_threshold: 0
    tunnel_type: null
    tunnel_port: null
    tunnel_checksum: null
action:
  description: The netlink write the run made (or would make) - V(add), V(set) (in place) or V(delete); V(none) when nothing changed.
  returned: always
  type: str
  sample: set
changed_fields:
  description: The fields that differed between the kernel's real server and the wanted one.
  returned: always
  type: list
  elements: str
  sample: [weight]
drain:
  description: What O(state=drained) did.
  returned: when O(state=drained) and the real server existed
  type: dict
  contains:
    removed:
      description: Whether the server was drained and removed.
      type: bool
    waited:
      description: Seconds spent waiting for its connections to end.
      type: float
    active_connections:
      description: Active connections left when the wait ended.
      type: int
    inactive_connections:
      description: Inactive connections left when the wait ended.
      type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvs.dr.plugins.module_utils._ipvs import (
    IPVSInputError,
    IPVSTable,
    check_drain_timeout,
    converge_entry,
    describe_service,
    real_key,
    real_options,
    service_identity_options,
    service_key,
    service_key_from,
    timed_out_draining,
    want_real,
)


def drain(module, table, service, before):
    """Quiesce, wait for the connections to end, remove; the module's result."""
    result = {"changed": True, "action": "delete", "changed_fields": sorted(before), "real": {}}
    if module._diff:
        result["diff"] = {"before": before, "after": {}}
    if module.check_mode:
        return result
    report = table.drain_real(service, before, module.params["drain_timeout"])
    if not report["removed"]:
        name, counts = f"{before['address']}:{before['port']}", (report["active_connections"], report["inactive_connections"])
        module.fail_json(
            msg=timed_out_draining(module.params["drain_timeout"], [(name, describe_service(service_key(service)), *counts)]),
            changed=True,
            drain=report,
            real={**before, "weight": 0},
        )
    result["drain"] = report
    return result


def main():
    identity = service_identity_options(prefix="service_")
    # Extended in place, not passed beside **identity: pylint cannot see the pop() and would
    # take argument_spec for a keyword given twice.
    identity["argument_spec"] = dict(identity["argument_spec"], **real_options(), drain_timeout=dict(type="int", default=300))
    module = AnsibleModule(supports_check_mode=True, **identity)
    try:
        key = service_key_from(module.params, prefix="service_")
        check_drain_timeout(module.params["drain_timeout"])
    except IPVSInputError as exc:
        module.fail_json(msg=str(exc))
    table = IPVSTable(module)
    service = table.get_existing_service(key)
    if service is None:
        module.fail_json(msg=f"the service {describe_service(key)} does not exist: create it first with lvs.dr.ipvs_service")
    try:
        want = want_real(module.params, service)
    except IPVSInputError as exc:
        module.fail_json(msg=str(exc))

    before, _counts = table.get_existing_real(service, real_key(want))
    if module.params["state"] == "drained" and before:
        result = drain(module, table, service, before)
    else:
        result = converge_entry(
            module,
            "real",
            "absent" if module.params["state"] == "drained" else module.params["state"],
            before=before,
            want=want,
            apply=lambda action, entry: table.apply_real(action, service, entry),
            read_back=lambda: table.get_existing_real(service, real_key(want))[0],
        )
        result["real"] = result.pop("entry")
    table.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
