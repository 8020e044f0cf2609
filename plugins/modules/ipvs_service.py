#!/usr/bin/python
# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ipvs_service
short_description: Manage an IPVS virtual service in the kernel
version_added: 0.1.0
description:
  - Adds, changes or removes one virtual service of the kernel's IP Virtual Server (IPVS) table, the equivalent of
    C(ipvsadm -A), C(ipvsadm -E) and C(ipvsadm -D).
  - Reads the table over generic netlink and compares it field by field with the options, so a second run changes nothing.
  - A changed field is modified in place (netlink SET), never by delete and add, so established connections survive a
    scheduler or timeout change.
  - Without CAP_NET_ADMIN (no C(become)) the kernel refuses even to read the table; the task fails and says so.
  - Its real servers are managed with M(lvs.dr.ipvs_real).
author:
  - lvs.dr developers (@lvs-dr)
requirements:
  - pyroute2 >= 0.9.5 on the managed host. Debian 12 ships 0.7.2, which has no IPVS API; install a newer one with pip
    (for example C(pip install 'pyroute2>=0.9.5') in a virtualenv, or the P(lvs.dr.director#role) role does it).
  - A kernel with IPVS (C(ip_vs) and the scheduler's module C(ip_vs_<scheduler>) loaded or loadable).
extends_documentation_fragment:
  - lvs.dr.attributes
options:
  protocol:
    description:
      - The protocol of an address service. Defaults to V(tcp) when O(address) is given.
    type: str
    choices: [tcp, udp, sctp]
  address:
    description:
      - The virtual IP address (VIP), IPv4 or IPv6. Give either O(address) and O(port), or O(fwmark).
    type: str
    aliases: [vip]
  port:
    description:
      - The service's port, 1 to 65535. Required with O(address).
    type: int
  fwmark:
    description:
      - A firewall-mark service (C(ipvsadm -f)) instead of an address one, 1 to 4294967295.
    type: int
  family:
    description:
      - The address family of a firewall-mark service. With O(address) it is taken from the address (and, if given, must match it).
      - Defaults to V(ipv4) for firewall-mark services.
    type: str
    choices: [ipv4, ipv6]
  scheduler:
    description:
      - The scheduling algorithm. V(twos) needs Linux 6.2 or later.
      - A scheduler the kernel cannot load fails the task with nothing changed.
    type: str
    choices: [rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos]
    default: wlc
  persistent_timeout:
    description:
      - Persistence in seconds (C(ipvsadm -p)); V(0) means not persistent. At most 2678400 (31 days), the most C(ipvsadm)
        can restore (the kernel's own limit, timeout x HZ in 32 bits, is lower at some HZ than the number suggests).
    type: int
    default: 0
  persistent_netmask:
    description:
      - The client address mask that persistence groups by (C(ipvsadm -M)). For IPv4 a netmask such as V(255.255.255.0) or a
        prefix length; for IPv6 a prefix length. Defaults to the full length (one client address). Returned as a prefix length.
    type: str
  persistence_engine:
    description:
      - A persistence engine (C(ipvsadm --pe)); needs O(persistent_timeout).
    type: str
    choices: [sip]
  scheduler_flags:
    description:
      - Scheduler flags (C(ipvsadm -b)); V(sh-*) go with scheduler V(sh), V(mh-*) with V(mh).
    type: list
    elements: str
    choices: [sh-fallback, sh-port, mh-fallback, mh-port]
  one_packet:
    description:
      - One-packet scheduling (C(ipvsadm -o)), for UDP and firewall-mark services.
    type: bool
    default: false
  state:
    description:
      - V(present) makes the service exist with these settings; V(absent) removes it and its real servers.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: lvs.dr.ipvs_real
  - module: lvs.dr.ipvs_info
notes:
  - Options left out take their defaults, as with C(ipvsadm -A); the module makes the service exactly as described.
  - A failure after a write returns C(applied) and C(refused), the writes this run made and those the kernel refused, as
    M(lvs.dr.ipvs_table) returns them (RV(lvs.dr.ipvs_table#module:applied), RV(lvs.dr.ipvs_table#module:refused)).
"""

EXAMPLES = r"""
- name: Balance HTTP on the VIP round robin (the seed's ipvsadm -A -t 172.25.8.100:80 -s rr)
  lvs.dr.ipvs_service:
    protocol: tcp
    address: 172.25.8.100
    port: 80
    scheduler: rr

- name: Keep a client on one real server for 5 minutes, grouped by /24
  lvs.dr.ipvs_service:
    address: 172.25.8.100
    port: 443
    scheduler: wlc
    persistent_timeout: 300
    persistent_netmask: 255.255.255.0

- name: A firewall-mark service with source hashing that falls back when a server is down
  lvs.dr.ipvs_service:
    fwmark: 10
    scheduler: sh
    scheduler_flags: [sh-fallback]

- name: Remove the service
  lvs.dr.ipvs_service:
    address: 172.25.8.100
    port: 80
    state: absent
"""

RETURN = r"""
service:
  description: The service as the kernel has it after the run (in check mode, as it would be); empty when absent.
  returned: always
  type: dict
  sample:
    family: ipv4
    protocol: tcp
    address: 172.25.8.100
    port: 80
    fwmark: null
    scheduler: rr
    persistent_timeout: 0
    persistent_netmask: 32
    persistence_engine: null
    scheduler_flags: []
    one_packet: false
action:
  description: The netlink write the run made (or would make in check mode) - V(add), V(set) (in place) or V(delete); V(none) when nothing changed.
  returned: always
  type: str
  sample: set
changed_fields:
  description: The fields that differed between the kernel's service and the wanted one.
  returned: always
  type: list
  elements: str
  sample: [scheduler]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvs.dr.plugins.module_utils._ipvs_plan import converge_entry, open_table
from ansible_collections.lvs.dr.plugins.module_utils._ipvs_spec import SERVICE, IPVSInputError, argument_spec, identity_spec, service_key, want_service


def main():
    spec = identity_spec()
    # Extended in place, not passed beside **spec: pylint would take argument_spec for a keyword given twice.
    spec["argument_spec"].update(argument_spec(SERVICE))
    module = AnsibleModule(supports_check_mode=True, **spec)
    try:
        want = want_service(module.params)
    except IPVSInputError as exc:
        module.fail_json(msg=str(exc))
    key = service_key(want)
    with open_table(module) as table:
        result = converge_entry(module, table, "service", (want, module.params["state"], []), lambda read: read.get(key, (None,))[0], want)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
