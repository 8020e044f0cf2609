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
  - With O(state=present) the service must exist (create it with M(lvs.dr.ipvs_service)); a missing service fails the
    task, except in check mode, where it reports the real server as it would be added (after M(lvs.dr.ipvs_service)
    reported the service as it would be added). With O(state=absent) or O(state=drained) a missing service means
    nothing to do.
  - O(state=absent) and O(state=drained) need only the real server's identity, O(address) and O(port); the other options
    are not checked.
author:
  - lvs.dr developers (@lvs-dr)
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
    description:
      - The server's weight, V(0) (quiesced - no new connections) to 65535, the range C(ipvsadm) can save and restore.
      - On a persistent service, clients with a persistence template keep reaching a weight-0 server unless
        C(net.ipv4.vs.expire_quiescent_template) is 1 (the P(lvs.dr.director#role) role sets it).
    type: int
    default: 1
  upper_threshold:
    description: Stop sending new connections above this many; V(0) is no limit.
    type: int
    default: 0
  lower_threshold:
    description:
      - Resume below this many connections after the upper threshold was hit; V(0) is unset.
      - It may not be above O(upper_threshold), where V(0) counts as a value, as the kernel refuses that.
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
        the kernel's FIN_WAIT/TIME_WAIT timeouts (C(ipvsadm --set)) after they close; UDP entries live for the udp timeout
        (300 s by default) after their last packet, so a UDP drain needs a lower udp timeout or a longer O(drain_timeout).
    type: int
    default: 300
seealso:
  - module: lvs.dr.ipvs_service
  - module: lvs.dr.ipvs_info
notes:
  - Options left out take their defaults, as with C(ipvsadm -a); the module makes the real server exactly as described.
  - A failure after a write returns C(applied) and C(refused), the writes this run made and those the kernel refused, as
    M(lvs.dr.ipvs_table) returns them (RV(lvs.dr.ipvs_table#module:applied), RV(lvs.dr.ipvs_table#module:refused)).
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
drained:
  description: What O(state=drained) did, as one item (the shape of M(lvs.dr.ipvs_table)'s RV(ignore:drained)).
  type: list
  elements: dict
  contains:
    service:
      description: The service, as in V(tcp 172.25.8.100:80).
      type: str
    real:
      description: The real server, as in V(172.25.8.2:80).
      type: str
    removed:
      description: Whether this run removed it (false when another run removed it during the wait, or on a time out).
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
  returned: when O(state=drained) and the real server existed (not in check mode), and when a drain times out
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvs.dr.plugins.module_utils._ipvs_plan import converge_entry, open_table
from ansible_collections.lvs.dr.plugins.module_utils._ipvs_spec import (
    DRAIN_TIMEOUT,
    REAL,
    IPVSInputError,
    argument_spec,
    check_range,
    identity_of,
    identity_spec,
    real_key,
    service_key_from,
    want_real,
)


def main():
    spec = identity_spec(prefix="service_")
    # Extended in place, not passed beside **spec: pylint would take argument_spec for a keyword given twice.
    spec["argument_spec"].update(argument_spec({**REAL, "drain_timeout": DRAIN_TIMEOUT}))
    module = AnsibleModule(supports_check_mode=True, **spec)
    params = module.params
    try:
        key = service_key_from(params, prefix="service_")
        want = want_real(params, identity_of(key))
        check_range("drain_timeout", params["drain_timeout"], DRAIN_TIMEOUT)
    except IPVSInputError as exc:
        module.fail_json(msg=str(exc))
    with open_table(module) as table:
        wanted = (identity_of(key), None, [(want, params["state"])])
        result = converge_entry(
            module, table, "real", wanted, lambda read: read.get(key, (None, {}))[1].get(real_key(want)), want, drain_timeout=params["drain_timeout"]
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
