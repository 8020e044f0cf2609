#!/usr/bin/python
# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: arptables_rule
short_description: Manage one arptables rule
version_added: 0.1.0
description:
  - Adds or removes one rule of the arptables C(filter) table, the equivalent of C(arptables -A), C(arptables -I) and
    C(arptables -D). Real servers of an LVS direct-routing setup use it to stop answering ARP for the virtual IP
    (C(arptables -A INPUT -d VIP -j DROP)) and to announce their own address instead (C(arptables -A OUTPUT -s VIP -j mangle
    --mangle-ip-s RIP)).
  - Reads the rule set with the backend's save output and compares the wanted rule field by field with each rule of the chain,
    so a second run changes nothing. Addresses are compared normalised (V(198.51.100.1) and V(198.51.100.1/32) are the same).
  - A rule of the chain that also has matches this module does not manage (a negation, C(--opcode), C(--h-type)...) is a
    different rule and is left alone.
  - With the nft backend, C(arptables-nft-save) leaves some matches out of its output (arptables-nft 1.8.9 prints no masked MAC
    address, C(--source-mac 02:00:00:00:00:01/ff:ff:ff:00:00:00)). So the module also reads C(nft -j list table arp filter) and
    takes a rule whose save line does not show every match nft lists for a foreign rule it cannot read - never the wanted rule,
    never deleted - and deletes the nft rules it wants gone by handle (C(nft delete rule arp filter CHAIN handle N)).
  - Runs arptables with argument lists, never through a shell.
author:
  - lvs.dr developers (@lvs-dr)
requirements:
  - For the legacy backend, C(arptables-legacy) (Debian and Ubuntu package C(arptables); RHEL C(arptables)) and a kernel with
    C(arp_tables) (C(arptable_filter), and C(arpt_mangle) for O(jump=mangle)).
  - For the nft backend, C(arptables-nft) and C(arptables-nft-save) (Debian and Ubuntu package C(iptables); RHEL C(iptables-nft)),
    C(nft) (package C(nftables)) to read a chain that has rules, and a kernel with nftables' arp family.
extends_documentation_fragment:
  - lvs.dr.attributes
options:
  chain:
    description:
      - The chain of the C(filter) table.
      - The nft backend has no V(FORWARD) chain (nftables' arp family has no forward hook).
    type: str
    required: true
    choices: [INPUT, OUTPUT, FORWARD]
  source:
    description:
      - The sender IPv4 address to match (C(-s)), optionally with a V(/prefix) length (0-32). Host bits are cleared and
        V(/32) is dropped, the way arptables prints it; V(/0) means any address, as if O(source) were not set.
    type: str
  destination:
    description:
      - The target IPv4 address to match (C(-d)), optionally with a V(/prefix) length, normalised like O(source).
    type: str
  in_interface:
    description:
      - The interface the ARP packet came in on (C(-i)); not in chain V(OUTPUT).
      - The interface must exist on the host when O(state=present).
    type: str
  out_interface:
    description:
      - The interface the ARP packet goes out on (C(-o)); not in chain V(INPUT).
      - The interface must exist on the host when O(state=present).
    type: str
  jump:
    description:
      - The target (C(-j)). V(mangle) rewrites the packet and needs at least one of O(mangle_ip_source), O(mangle_ip_destination),
        O(mangle_mac_source) and O(mangle_mac_destination).
    type: str
    required: true
    choices: [ACCEPT, DROP, mangle]
  mangle_ip_source:
    description:
      - With O(jump=mangle), the sender IPv4 address to write (C(--mangle-ip-s)), without a prefix.
    type: str
  mangle_ip_destination:
    description:
      - With O(jump=mangle), the target IPv4 address to write (C(--mangle-ip-d)), without a prefix.
    type: str
  mangle_mac_source:
    description:
      - With O(jump=mangle), the sender MAC address to write (C(--mangle-mac-s)), as six hex pairs separated by colons.
      - The legacy backend needs C(--h-length 6) with it; the module adds it.
    type: str
  mangle_mac_destination:
    description:
      - With O(jump=mangle), the target MAC address to write (C(--mangle-mac-d)), as six hex pairs separated by colons.
    type: str
  state:
    description:
      - V(present) adds the rule unless the chain already has it (anywhere in the chain).
      - V(absent) deletes every copy of the rule from the chain (with the nft backend, only copies whose every match it can read).
    type: str
    choices: [present, absent]
    default: present
  action:
    description:
      - Where a missing rule goes with O(state=present) - V(append) at the end of the chain (C(-A)) or V(insert) at position
        O(rule_num) (C(-I)). A rule that is already in the chain is not moved.
    type: str
    choices: [append, insert]
    default: append
  rule_num:
    description:
      - With O(action=insert), the position the rule is inserted at, from V(1) (the first) to one past the last rule.
      - Defaults to V(1).
    type: int
  backend:
    description:
      - The arptables implementation to use.
      - V(auto) uses the one the C(arptables) command points at (the Debian alternative C(/usr/sbin/arptables)). If that one cannot
        list the rule set on this host (for example a kernel without nftables' arp family), it uses the other one when that works,
        with a warning.
      - nft lists an empty rule set both before its arp table exists and on a kernel without nftables' arp family, so in that case
        V(auto) adds a rule in a throwaway network namespace (C(unshare --net)) to tell them apart.
      - V(legacy) is C(arptables-legacy) (the kernel's C(arp_tables)), V(nft) is C(arptables-nft) (nftables' arp family).
    type: str
    choices: [auto, legacy, nft]
    default: auto
notes:
  - The legacy backend's rule set is read with C(arptables-legacy -t filter -L -n) and turned into what C(arptables-legacy-save)
    prints, because that script always lists with C(/usr/sbin/arptables), whichever backend that alternative points at.
  - C(arptables-legacy-restore) also runs C(/usr/sbin/arptables), so restore a legacy RV(save) text with that alternative pointing at
    C(arptables-legacy), or replay its rule lines with C(arptables-legacy).
  - Rules in the C(filter) table only; policies and user-defined chains are not managed.
  - The module manages one rule and knows nothing of the rules of earlier runs. When a declared rule changes (a new address, a
    VIP removed), remove the old one with O(state=absent); the C(lvs.dr.realserver) role records the VIPs and address whose rules
    it wrote and does so (see its README).
"""

EXAMPLES = r"""
- name: Do not answer ARP requests for the VIP (real server of an LVS-DR setup)
  lvs.dr.arptables_rule:
    chain: INPUT
    destination: 172.25.8.100
    jump: DROP

- name: Announce the real server's own address instead of the VIP
  lvs.dr.arptables_rule:
    chain: OUTPUT
    source: 172.25.8.100
    jump: mangle
    mangle_ip_source: 172.25.8.2
  register: arp_mangle

- name: Persist the rule set, to restore it at boot
  ansible.builtin.copy:
    content: "{{ arp_mangle.save }}"
    dest: /etc/arptables.rules
    mode: "0600"

- name: Rewrite the sender MAC address too, on one interface only
  lvs.dr.arptables_rule:
    chain: OUTPUT
    out_interface: eth0
    source: 172.25.8.100
    jump: mangle
    mangle_ip_source: 172.25.8.2
    mangle_mac_source: "02:00:ac:19:08:02"

- name: Accept ARP from the LVS network first, before any DROP rule
  lvs.dr.arptables_rule:
    chain: INPUT
    in_interface: eth0
    source: 172.25.8.0/24
    jump: ACCEPT
    action: insert
    rule_num: 1

- name: Remove the DROP rule, with the legacy backend whatever arptables points at
  lvs.dr.arptables_rule:
    chain: INPUT
    destination: 172.25.8.100
    jump: DROP
    state: absent
    backend: legacy
"""

RETURN = r"""
rule:
  description:
    - The wanted rule, normalised. C(extra) lists the save tokens the module does not manage; it is always empty here.
  returned: always
  type: dict
  sample:
    chain: OUTPUT
    jump: mangle
    source: 172.25.8.100
    destination: null
    in_interface: null
    out_interface: null
    mangle_ip_source: 172.25.8.2
    mangle_ip_destination: null
    mangle_mac_source: null
    mangle_mac_destination: null
    extra: []
backend:
  description: The backend used, V(legacy) or V(nft).
  returned: always
  type: str
  sample: legacy
binary:
  description: The arptables binary the module ran (or would run in check mode).
  returned: always
  type: str
  sample: /usr/sbin/arptables-legacy
commands:
  description:
    - The calls the run made (in check mode, would make), as argument lists; empty when nothing changed.
    - The nft backend deletes a rule with C(nft delete rule arp filter CHAIN handle N), so that it is that rule and not another
      one that arptables-nft shows alike.
  returned: always
  type: list
  elements: list
  sample: [["/usr/sbin/arptables-legacy", "-A", "OUTPUT", "-j", "mangle", "-s", "172.25.8.100", "--mangle-ip-s", "172.25.8.2"]]
rules:
  description:
    - The chain's rules after the run (in check mode, as they would be), in order, normalised like RV(rule). A rule with matches
      the module does not manage has them in C(extra).
  returned: always
  type: list
  elements: dict
  sample:
    - chain: OUTPUT
      jump: mangle
      source: 172.25.8.100
      destination: null
      in_interface: null
      out_interface: null
      mangle_ip_source: 172.25.8.2
      mangle_ip_destination: null
      mangle_mac_source: null
      mangle_mac_destination: null
      extra: []
save:
  description:
    - The backend's full save output after the run, for example to persist it for C(arptables-restore). For the legacy backend, the
      text C(arptables-legacy-save) prints (each rule line ends with a space); for nft, the output of C(arptables-nft-save) without
      its C(# Generated by ... on <time>) and C(# Completed on <time>) comment lines, so the text only changes when the rules do
      (a copy of it is idempotent; restore ignores comments). It is empty while nftables has no arp table.
    - In check mode, the current save output, not a predicted one; RV(rules) and the diff show the predicted chain.
  returned: always
  type: str
  sample: "*filter\n:INPUT ACCEPT\n:OUTPUT ACCEPT\n:FORWARD ACCEPT\n-A INPUT -j DROP -d 172.25.8.100 \n\n"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvs.dr.plugins.module_utils._arptables import CHAINS, JUMPS, MANGLE_OPTIONS
from ansible_collections.lvs.dr.plugins.module_utils._arptables_backend import manage_rule


def main():
    module = AnsibleModule(
        argument_spec=dict(
            chain=dict(type="str", required=True, choices=list(CHAINS)),
            source=dict(type="str"),
            destination=dict(type="str"),
            in_interface=dict(type="str"),
            out_interface=dict(type="str"),
            jump=dict(type="str", required=True, choices=list(JUMPS)),
            mangle_ip_source=dict(type="str"),
            mangle_ip_destination=dict(type="str"),
            mangle_mac_source=dict(type="str"),
            mangle_mac_destination=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            action=dict(type="str", choices=["append", "insert"], default="append"),
            rule_num=dict(type="int"),
            backend=dict(type="str", choices=["auto", "legacy", "nft"], default="auto"),
        ),
        required_if=[("jump", "mangle", MANGLE_OPTIONS, True)],
        supports_check_mode=True,
    )
    module.exit_json(**manage_rule(module))


if __name__ == "__main__":
    main()
