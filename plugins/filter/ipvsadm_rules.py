# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The director role's saved table, from one read of the kernel (lvs.dr.ipvs_info): the lines
ipvsadm-save -n prints, plus the real servers' thresholds (-x/-y), which ipvsadm-save leaves out
and ipvsadm-restore takes."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.lvs.dr.plugins.module_utils._ipvs_ipvsadm import render

DOCUMENTATION = r"""
name: ipvsadm_rules
author: lvs.dr developers (@lvs-dr)
version_added: 0.1.0
short_description: Write an IPVS table read by lvs.dr.ipvs_info as ipvsadm-restore's input
description:
  - Turns the O(lvs.dr.ipvs_info#module:services) that lvs.dr.ipvs_info returns into the text that C(ipvsadm-restore)
    reads, one C(-A) line per virtual service followed by one C(-a) line per real server, in C(ipvsadm-save -n)'s
    format and order of options.
  - Unlike C(ipvsadm-save), each real server with a connection threshold gets C(-x UPPER -y LOWER), so a restore brings
    the thresholds back.
  - Services are sorted by firewall mark, family, protocol, address and port, real servers by address and port, so the
    text changes only when the table does.
options:
  _input:
    description: lvs.dr.ipvs_info's O(lvs.dr.ipvs_info#module:services).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Read the IPVS table
  lvs.dr.ipvs_info:
  register: table

- name: Save it where the ipvsadm service restores it from at boot
  ansible.builtin.copy:
    dest: /etc/ipvsadm.rules
    content: "{{ table.services | lvs.dr.ipvsadm_rules }}"
    mode: "0600"
"""

RETURN = r"""
_value:
  description: The rules, one per line, each line ending in a newline; V("") for an empty table.
  type: str
"""


def ipvsadm_rules(services):
    if not isinstance(services, (list, tuple)) or not all(isinstance(s, dict) for s in services):
        raise AnsibleFilterError(f"ipvsadm_rules: expected lvs.dr.ipvs_info's services (a list of dicts), got {services!r}")
    try:
        return render(services)
    except (KeyError, ValueError) as e:
        raise AnsibleFilterError(f"ipvsadm_rules: expected lvs.dr.ipvs_info's services, but an entry has no valid {e}") from e


class FilterModule:
    def filters(self):
        return {"ipvsadm_rules": ipvsadm_rules}
