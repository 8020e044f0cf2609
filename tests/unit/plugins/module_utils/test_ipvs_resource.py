"""Unit tests of _ipvs_resource.merged_services: under merged, what a listed entry leaves out is
the kernel's, except the options that go with one the entry changes. The lab's
tests/integration/ipvs/test_ipvs_table.py::test_merged_changes_only_the_options_given_and_replaced_sets_the_rest_to_their_defaults
shows the same against the kernel."""

from __future__ import annotations

import pytest

from ansible_collections.lvs.dr.plugins.module_utils._ipvs_resource import merged_services
from ansible_collections.lvs.dr.plugins.module_utils._ipvs_spec import real_key, service_key, want_real, want_service

SERVICE = {"protocol": "tcp", "address": "10.9.0.1", "port": 80}
KERNEL_SERVICE = {**SERVICE, "scheduler": "sh", "scheduler_flags": ["sh-port"], "persistent_timeout": 300}
KERNEL_SERVICE.update(persistent_netmask="24", persistence_engine="sip")
KERNEL_REAL = {"address": "10.9.0.2", "forwarding_method": "tunnel", "tunnel_type": "gue", "tunnel_port": 6080, "weight": 3, "upper_threshold": 50}


def kernel():
    service = want_service(KERNEL_SERVICE)
    real = want_real(KERNEL_REAL, service)
    return {service_key(service): (service, {real_key(real): real})}


def given(service=None, real=None):
    real_params = {"address": "10.9.0.2", "state": "present", **(real or {})}
    return [{**SERVICE, "state": "present", "reals": [real_params], **(service or {})}]


@pytest.mark.parametrize(
    ("service", "real", "expected_service", "expected_real"),
    [
        # Nothing given: all is the kernel's.
        (None, None, {}, {}),
        # A weight: only the weight.
        (None, {"weight": 5}, {}, {"weight": 5}),
        # Another scheduler: sh's flags go, the persistence stays.
        ({"scheduler": "rr"}, None, {"scheduler": "rr", "scheduler_flags": []}, {}),
        # No persistence: its netmask and engine go.
        ({"persistent_timeout": 0}, None, {"persistent_timeout": 0, "persistent_netmask": 32, "persistence_engine": None}, {}),
        # Another forwarding method: the tunnel's options go.
        (None, {"forwarding_method": "gatewaying"}, {}, {"forwarding_method": "dr", "tunnel_type": None, "tunnel_port": None, "tunnel_checksum": None}),
    ],
)
def test_merged_keeps_what_is_left_out_but_not_what_goes_with_a_change(service, real, expected_service, expected_real):
    current = kernel()
    [(kernel_service, kernel_reals)] = current.values()
    [merged] = merged_services(given(service, real), current)
    merged_service = want_service(merged)
    assert merged_service == {**kernel_service, **expected_service}
    [kernel_real] = kernel_reals.values()
    [real_params] = merged["reals"]
    assert {**kernel_real, **want_real(real_params, merged_service)} == {**kernel_real, **expected_real}


def test_a_service_or_real_server_the_kernel_lacks_is_as_given():
    new_service, known_service = given({"port": 81}) + given(real={"address": "10.9.0.3"})
    merged = merged_services([new_service, known_service], kernel())
    assert merged[0] == new_service and merged[1]["reals"] == known_service["reals"]
