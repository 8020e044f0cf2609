"""Unit tests of the director role's resolve_services filter: defaults filled in, nothing else
touched, the same list however often it runs; its linearity is measured by bench/run role, not timed here."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError, AnsibleUndefinedVariable

from ansible_collections.lvs.dr.plugins.filter.resolve_services import resolve_services

HOSTS = [
    {"realserver_address": "10.9.0.2", "ansible_facts": {"default_ipv4": {"address": "10.9.9.9"}}},
    {"ansible_facts": {"default_ipv4": {"address": "10.9.0.3"}}},
    {"inventory_hostname": "no-facts"},
]
GROUP = [{"address": "10.9.0.2"}, {"address": "10.9.0.3"}, {"address": ""}]


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ({"address": "10.9.0.1", "port": 80}, {"address": "10.9.0.1", "port": 80, "scheduler": "wlc", "reals": GROUP}),
        ({"fwmark": 7, "scheduler": None, "reals": None}, {"fwmark": 7, "scheduler": "wlc", "reals": GROUP}),
        ({"fwmark": 7, "scheduler": "sh", "reals": []}, {"fwmark": 7, "scheduler": "sh", "reals": []}),
        ({"fwmark": 7, "reals": [{"address": "10.9.0.8", "weight": 0}]}, {"fwmark": 7, "scheduler": "wlc", "reals": [{"address": "10.9.0.8", "weight": 0}]}),
    ],
)
def test_fills_in_scheduler_and_group_reals(service, expected):
    before = dict(service)
    assert resolve_services([service], scheduler="wlc", hosts=HOSTS) == [expected]
    assert service == before


def test_the_same_result_each_time():
    services = [{"address": "10.9.0.1", "port": p} for p in (80, 443)]
    once = resolve_services(services, hosts=HOSTS)
    assert resolve_services(services, hosts=HOSTS) == once
    assert len(once) == 2 and [len(s["reals"]) for s in once] == [3, 3]


@pytest.mark.parametrize("services", [None, "tcp:80", [{"port": 80}, "10.9.0.1"]])
def test_not_a_list_of_services_is_refused(services):
    with pytest.raises(AnsibleFilterError, match="resolve_services: the services must be a list of dicts"):
        resolve_services(services)


def test_an_address_that_templates_from_missing_facts_is_empty():
    # hostvars template lazily: realserver_address from facts not gathered is undefined, and the
    # role's own check then names realserver_address.
    class Unresolvable(dict):
        def get(self, key, default=None):
            raise AnsibleUndefinedVariable("'dict object' has no attribute 'eth1'")

    assert resolve_services([{"address": "10.9.0.1", "port": 80}], hosts=[Unresolvable()])[0]["reals"] == [{"address": ""}]


def test_checks_take_the_default_and_are_dropped_without_one() -> None:
    services = [{"address": "10.9.0.1", "port": 80, "check": {"type": "http", "path": "/health"}}, {"address": "10.9.0.1", "port": 443}]
    default = {"type": "tcp", "path": "/", "status": 200, "delay_loop": 2}
    checked = resolve_services(services, hosts=HOSTS, check=default)
    assert [s["check"] for s in checked] == [{"type": "http", "path": "/health", "status": 200, "delay_loop": 2}, default]
    assert all("check" not in s for s in resolve_services(services, hosts=HOSTS))
    assert services[0]["check"] == {"type": "http", "path": "/health"}  # the input is not modified


def test_a_check_that_is_not_a_dict_names_the_variable() -> None:
    with pytest.raises(AnsibleFilterError, match="director_services: check must be a dict"):
        resolve_services([{"address": "10.9.0.1", "port": 80, "check": "http"}], check={})
