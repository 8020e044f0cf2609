#!/usr/bin/python
# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ipvs_sync_daemon
short_description: Manage an IPVS connection-synchronisation daemon in the kernel
version_added: 0.1.0
description:
  - Starts, restarts or stops one of the kernel's IPVS connection-sync daemons, the equivalent of
    C(ipvsadm --start-daemon) and C(ipvsadm --stop-daemon). A V(master) daemon multicasts the director's connection
    table; a V(backup) daemon receives it, so that a standby director that takes over the VIP knows the established
    connections and keeps them going to the same real servers.
  - The kernel runs at most one daemon of each mode in a network namespace, and both may run at once (each director
    of a keepalived pair usually runs both); each is its own task.
  - Reads the running daemons over generic netlink and compares every setting with the options (an option left out is
    compared with the kernel's default), so a second run changes nothing.
  - The kernel cannot change a running daemon. A daemon of that mode that runs with other settings is stopped and
    started again (RV(action=restart)); the sync messages of that moment are lost, the connection table is not. If the
    kernel refuses the new settings, the old daemon is started again and the task fails.
  - The interface must exist before anything is changed; bad options fail the task with the kernel untouched.
  - Without CAP_NET_ADMIN (no C(become)) the kernel refuses even to read the daemons; the task fails and says so.
author:
  - lvs.dr developers (@lvs-dr)
requirements:
  - pyroute2 >= 0.9.5 on the managed host. Debian 12 ships 0.7.2, which has no IPVS API; install a newer one with pip
    (for example C(pip install 'pyroute2>=0.9.5') in a virtualenv, or the P(lvs.dr.director#role) role does it).
  - A kernel with IPVS (C(ip_vs) loaded or loadable). O(sync_maxlen), O(mcast_group), O(mcast_port) and O(mcast_ttl)
    need Linux 4.3 or later.
extends_documentation_fragment:
  - lvs.dr.attributes
options:
  mode:
    description:
      - Which daemon - V(master) sends this director's connection changes, V(backup) receives those of a master.
    type: str
    choices: [master, backup]
    required: true
  state:
    description:
      - V(present) makes the daemon of O(mode) run with these settings (started, or stopped and started again when it
        runs with others); V(absent) stops it, whatever its settings (the other options are then not checked).
    type: str
    choices: [present, absent]
    default: present
  interface:
    description:
      - The interface the sync messages go out on (master) or come in on (backup), C(ipvsadm --mcast-interface). It must
        exist in the host's (or container's) network namespace. Required with O(state=present).
    type: str
  syncid:
    description:
      - The sync ID, 0 to 255, C(ipvsadm --syncid). A master stamps its messages with it; a backup takes only the messages
        of its own sync ID, or with V(0) those of every master. Give the master and the backup of a pair the same one,
        and another pair on the same segment another one.
    type: int
    default: 0
  sync_maxlen:
    description:
      - The UDP payload of a sync message in bytes, C(ipvsadm --sync-maxlen) - for a master 1 to 65507 (65487 with an IPv6
        group), for a backup (its receive buffer) 1024 to 65507 (65487); the kernel would change any other value.
      - Left out, the kernel's default - for a master 1472 (a 1500-byte packet; 1452 with an IPv6 group), for a backup the
        interface's MTU (at least 1500) less 28 (48) bytes of headers. A backup whose interface's MTU changed is then
        restarted on the next run, to the new default.
    type: int
  mcast_group:
    description:
      - The multicast group the messages go to, IPv4 (224.0.0.0/4) or IPv6 (ff00::/8), C(ipvsadm --mcast-group).
        Left out, the kernel's V(224.0.0.81).
    type: str
  mcast_port:
    description:
      - The UDP port of the messages, 1 to 65535, C(ipvsadm --mcast-port). Left out, the kernel's V(8848).
    type: int
  mcast_ttl:
    description:
      - The multicast TTL of a master's messages, 1 to 255, C(ipvsadm --mcast-ttl). Left out, the kernel's V(1) (the
        local segment only).
    type: int
seealso:
  - module: lvs.dr.ipvs_info
  - name: IPVS connection synchronization
    description: The kernel's documentation of the sync daemons and their sysctls.
    link: https://docs.kernel.org/networking/ipvs-sysctl.html
notes:
  - Only connection entries are synchronised, not the table of services and real servers; give each director the same
    table (the P(lvs.dr.director#role) role, or M(lvs.dr.ipvs_table)).
  - C(ipvsadm-save) does not keep the daemons, so nothing starts them again at boot; the director role's
    C(director_sync_daemons) installs a unit that does.
  - The firewall of the backup must let the master's UDP messages to O(mcast_group) and O(mcast_port) in.
"""

EXAMPLES = r"""
# Both directors of a keepalived pair, on their sync link eth1: each runs a master (sending
# the connections it balances) and a backup (receiving the other's), with the pair's sync ID.
- name: Send this director's connections to the other director
  lvs.dr.ipvs_sync_daemon:
    mode: master
    interface: eth1
    syncid: 10

- name: Receive the other director's connections
  lvs.dr.ipvs_sync_daemon:
    mode: backup
    interface: eth1
    syncid: 10

- name: Sync over IPv6 with bigger messages (the running backup is stopped and started again)
  lvs.dr.ipvs_sync_daemon:
    mode: backup
    interface: eth1
    syncid: 10
    mcast_group: ff02::81
    mcast_port: 8848
    sync_maxlen: 8952

- name: Stop the master daemon
  lvs.dr.ipvs_sync_daemon:
    mode: master
    state: absent
"""

RETURN = r"""
before:
  description: The daemon of O(mode) as it ran before the task; empty when none ran.
  returned: always
  type: dict
  sample: {}
after:
  description: The daemon of O(mode) as the kernel runs it after the task (in check mode, as it would); empty when none runs.
  returned: always
  type: dict
  contains:
    mode: {description: V(master) or V(backup)., type: str}
    interface: {description: The multicast interface., type: str}
    syncid: {description: The sync ID., type: int}
    sync_maxlen: {description: The UDP payload of a sync message in bytes (null on kernels before 4.3)., type: int}
    mcast_group: {description: The multicast group (null on kernels before 4.3)., type: str}
    mcast_port: {description: The UDP port (null on kernels before 4.3)., type: int}
    mcast_ttl: {description: The multicast TTL (null on kernels before 4.3)., type: int}
  sample: {mode: master, interface: eth1, syncid: 10, sync_maxlen: 1472, mcast_group: 224.0.0.81, mcast_port: 8848, mcast_ttl: 1}
action:
  description:
    - What the run did (or would do in check mode) - V(start), V(restart) (stopped and started again with the new
      settings), V(stop); V(none) when nothing changed.
  returned: always
  type: str
  sample: restart
changed_fields:
  description: The settings that differed between the running daemon and the wanted one (every field for a start or a stop).
  returned: always
  type: list
  elements: str
  sample: [syncid]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvs.dr.plugins.module_utils._ipvs_spec import SYNC_DAEMON, argument_spec
from ansible_collections.lvs.dr.plugins.module_utils._ipvs_sync import run_sync_daemon


def main():
    module = AnsibleModule(argument_spec=argument_spec(SYNC_DAEMON), required_if=[("state", "present", ["interface"])], supports_check_mode=True)
    module.exit_json(**run_sync_daemon(module))


if __name__ == "__main__":
    main()
