#!/usr/bin/python
# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ipvs_info
short_description: Read the kernel's IPVS table
version_added: 0.1.0
description:
  - Returns the whole IP Virtual Server table of the managed host, read over generic netlink, as structured data (what
    C(ipvsadm -Ln --stats) shows).
  - Each service has the same keys as M(lvs.dr.ipvs_service)'s options, and each real server the same keys as
    M(lvs.dr.ipvs_real)'s, so the output can be fed back to them; counters come on top.
  - Also returns the connection-sync daemons that run (what C(ipvsadm -L --daemon) shows), with the keys of
    M(lvs.dr.ipvs_sync_daemon)'s options.
author:
  - lvs.dr developers (@lvs-dr)
requirements:
  - pyroute2 >= 0.9.5 on the managed host.
  - A kernel with IPVS.
extends_documentation_fragment:
  - lvs.dr.attributes.info_module
options: {}
seealso:
  - module: lvs.dr.ipvs_service
  - module: lvs.dr.ipvs_real
  - module: lvs.dr.ipvs_sync_daemon
"""

EXAMPLES = r"""
- name: Read the IPVS table
  lvs.dr.ipvs_info:
  register: ipvs

- name: Show who takes the traffic of the seed's VIP
  ansible.builtin.debug:
    msg: "{{ item.address }} weight {{ item.weight }}: {{ item.active_connections }} active"
  loop: "{{ (ipvs.services | selectattr('address', 'equalto', '172.25.8.100') | first).reals }}"

- name: Check that this director receives its peer's connections
  ansible.builtin.assert:
    that: ipvs.sync_daemons | selectattr('mode', 'equalto', 'backup') | list | length == 1
    fail_msg: no backup sync daemon runs here
"""

RETURN = r"""
services:
  description: Every virtual service of the table, with its real servers.
  returned: always
  type: list
  elements: dict
  contains:
    family: {description: V(ipv4) or V(ipv6)., type: str}
    protocol: {description: "V(tcp), V(udp) or V(sctp); null for firewall-mark services.", type: str}
    address: {description: The virtual IP address; null for firewall-mark services., type: str}
    port: {description: The service port; null for firewall-mark services., type: int}
    fwmark: {description: The firewall mark; null for address services., type: int}
    scheduler: {description: The scheduler., type: str}
    persistent_timeout: {description: Persistence in seconds; 0 when not persistent., type: int}
    persistent_netmask: {description: The persistence mask as a prefix length., type: int}
    persistence_engine: {description: "The persistence engine, or null.", type: str}
    scheduler_flags: {description: Scheduler flags such as V(sh-fallback)., type: list, elements: str}
    one_packet: {description: One-packet scheduling., type: bool}
    stats: {description: "Counters: connections, packets_in, packets_out, bytes_in, bytes_out.", type: dict}
    reals:
      description: The service's real servers.
      type: list
      elements: dict
      contains:
        address: {description: The real server's address., type: str}
        port: {description: Its port., type: int}
        forwarding_method: {description: "V(dr), V(nat), V(tunnel) (or V(local)).", type: str}
        weight: {description: Its weight., type: int}
        upper_threshold: {description: Upper connection threshold; 0 is none., type: int}
        lower_threshold: {description: Lower connection threshold; 0 is none., type: int}
        tunnel_type: {description: "V(ipip), V(gue) or V(gre) for tunnel forwarding, else null.", type: str}
        tunnel_port: {description: "The GUE port, else null.", type: int}
        tunnel_checksum: {description: "V(nocsum), V(csum) or V(remcsum) for GUE and GRE, else null.", type: str}
        active_connections: {description: Active connections., type: int}
        inactive_connections: {description: Inactive connections., type: int}
        persistent_connections: {description: Persistence templates., type: int}
        stats: {description: "Counters: connections, packets_in, packets_out, bytes_in, bytes_out.", type: dict}
  sample:
    - family: ipv4
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
      stats: {connections: 20, packets_in: 120, packets_out: 0, bytes_in: 7920, bytes_out: 0}
      reals:
        - address: 172.25.8.2
          port: 80
          forwarding_method: dr
          weight: 1
          upper_threshold: 0
          lower_threshold: 0
          tunnel_type: null
          tunnel_port: null
          tunnel_checksum: null
          active_connections: 0
          inactive_connections: 10
          persistent_connections: 0
          stats: {connections: 10, packets_in: 60, packets_out: 0, bytes_in: 3960, bytes_out: 0}
sync_daemons:
  description:
    - The connection-sync daemons that run, none, one or two (at most a master and a backup), each with the keys of
      M(lvs.dr.ipvs_sync_daemon)'s options, as that module returns one in RV(lvs.dr.ipvs_sync_daemon#module:after); give
      one back to that module and nothing changes.
  returned: always
  type: list
  elements: dict
  sample:
    - {mode: master, interface: eth1, syncid: 10, sync_maxlen: 1472, mcast_group: 224.0.0.81, mcast_port: 8848, mcast_ttl: 1}
    - {mode: backup, interface: eth1, syncid: 10, sync_maxlen: 1472, mcast_group: 224.0.0.81, mcast_port: 8848, mcast_ttl: 1}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvs.dr.plugins.module_utils._ipvs_plan import open_table


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    with open_table(module) as table:
        services = [
            {**service, "stats": stats, "reals": [{**real, **counts} for real, counts in table.reals(service, with_stats=True)]}
            for service, stats in table.services(with_stats=True)
        ]
        sync_daemons = table.daemons()
    module.exit_json(changed=False, services=services, sync_daemons=sync_daemons)


if __name__ == "__main__":
    main()
