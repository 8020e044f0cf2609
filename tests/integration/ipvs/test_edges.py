"""Edges of the IPVS modules that users hit and the happy paths miss (issue 13's review
defects; the number is the issue's): a missing service, removal by identity alone, the
largest persistence the kernel holds, no CAP_NET_ADMIN, drains that another run finishes,
and what the diff says of a drained real server. Against the lab's kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from ..conftest import PROJECT, run
from .conftest import PORT, VIP, HeldConnection, ipvs_table

SERVICE = {"protocol": "tcp", "address": VIP, "port": 80, "scheduler": "rr"}
REAL = {"protocol": "tcp", "service_address": VIP, "service_port": 80, "address": "198.51.100.2"}


def test_real_of_a_missing_service_is_ok_to_remove_and_would_be_added_in_check_mode(netns, run_module):
    # 2: a teardown play run twice, and --check on a fresh director.
    for state in ("absent", "drained"):
        result = run_module("ipvs_real", {**REAL, "state": state}, netns=netns)
        assert result["rc"] == 0 and not result["changed"], result
    would = run_module("ipvs_service", SERVICE, netns=netns, check=True)
    assert would["changed"] and would["action"] == "add"
    real = run_module("ipvs_real", REAL, netns=netns, check=True, diff=True)
    assert real["rc"] == 0 and real["changed"] and real["action"] == "add", real
    assert real["diff"]["after"]["address"] == "198.51.100.2"
    assert ipvs_table(netns) == ""
    # Without check mode a missing service is still an error: the real server has nowhere to go.
    refused = run_module("ipvs_real", REAL, netns=netns)
    assert refused["failed"] and "does not exist: create it first with lvs.dr.ipvs_service" in refused["msg"]


def test_nat_real_with_a_mapped_port_is_removed_by_its_identity(netns, run_module):
    # 9: removal needs address and port only, not forwarding_method nat again.
    run_module("ipvs_service", SERVICE, netns=netns)
    nat = {**REAL, "port": 8080, "forwarding_method": "nat"}
    assert run_module("ipvs_real", nat, netns=netns)["changed"]
    gone = run_module("ipvs_real", {**REAL, "port": 8080, "state": "absent"}, netns=netns)
    assert gone["rc"] == 0 and gone["changed"] and gone["action"] == "delete", gone
    assert "8080" not in ipvs_table(netns)
    assert run_module("ipvs_real", nat, netns=netns)["changed"]
    table = run_module("ipvs_table", {"services": [{**SERVICE, "reals": [{"address": "198.51.100.2", "port": 8080, "state": "absent"}]}]}, netns=netns)
    assert table["rc"] == 0 and table["summary"]["reals"]["delete"] == 1, table


def test_a_table_at_the_limits_is_idempotent_and_ipvsadm_restores_it(netns, run_module):
    # 5: the longest persistence and the largest weight read back as given, and ipvsadm (which
    # restores the director role's table at boot) takes the saved table back.
    params = {**SERVICE, "persistent_timeout": 2678400}
    assert run_module("ipvs_service", params, netns=netns)["service"]["persistent_timeout"] == 2678400
    assert not run_module("ipvs_service", params, netns=netns)["changed"]
    real = {**REAL, "weight": 65535, "upper_threshold": 2147483647, "lower_threshold": 2147483647}
    assert run_module("ipvs_real", real, netns=netns)["real"]["weight"] == 65535
    assert not run_module("ipvs_real", real, netns=netns)["changed"]
    saved = ipvs_table(netns)
    run("ip", "netns", "exec", netns, "ipvsadm", "-C")
    subprocess.run(["ip", "netns", "exec", netns, "ipvsadm", "-R"], input=saved, text=True, check=True)
    assert ipvs_table(netns) == saved


def test_without_cap_net_admin_every_module_fails_with_the_fix(netns, collections_path, tmp_path):
    # 8: no become: the kernel refuses even the dump (GENL_ADMIN_PERM). A task failure, no traceback.
    for name, args in (("ipvs_info", {}), ("ipvs_service", SERVICE), ("ipvs_table", {"services": [SERVICE]})):
        argsfile = tmp_path / f"{name}.json"
        argsfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        argv = ["ip", "netns", "exec", netns, "setpriv", "--bounding-set", "-net_admin", "--inh-caps", "-net_admin"]
        argv += [sys.executable, str(PROJECT / "plugins" / "modules" / f"{name}.py"), str(argsfile)]
        proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(collections_path)}, check=False)
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
        result = json.loads(proc.stdout)
        assert result["failed"] and "Operation not permitted" in result["msg"] and "become: true" in result["msg"], result


def test_a_drain_that_another_run_finished_reports_no_delete(dr_net, run_module):
    # 10: the real server is removed by someone else while this run waits for its connections.
    director = dr_net["director"]
    service = {"protocol": "tcp", "service_address": VIP, "service_port": PORT}
    run_module("ipvs_service", {"address": VIP, "port": PORT, "scheduler": "rr"}, netns=director)
    run_module("ipvs_real", {**service, "address": "198.51.100.2"}, netns=director)
    conn = HeldConnection(dr_net["client"])
    try:
        assert conn.send("held") == "rs:held"
        result = {}
        args = {**service, "address": "198.51.100.2", "state": "drained", "drain_timeout": 30}
        draining = threading.Thread(target=lambda: result.update(run_module("ipvs_real", args, netns=director)))
        draining.start()
        deadline = time.monotonic() + 20
        while "-w 0" not in ipvs_table(director):  # this run has quiesced it and waits
            assert time.monotonic() < deadline, ipvs_table(director)
            time.sleep(0.2)
        run("ip", "netns", "exec", director, "ipvsadm", "-d", "-t", f"{VIP}:{PORT}", "-r", f"198.51.100.2:{PORT}")
        draining.join(60)
    finally:
        conn.close()
    assert result["rc"] == 0 and result["changed"], result
    assert result["action"] == "set" and result["drained"][0]["removed"] is False, result


def test_diff_of_a_drained_real_server_shows_it_gone(netns, run_module):
    # 10: drained and removed at once (no connections): "after" has no entry for it.
    reals = [{"address": "198.51.100.2"}, {"address": "198.51.100.3"}]
    run_module("ipvs_table", {"services": [{**SERVICE, "reals": reals}]}, netns=netns)
    reals[0]["state"] = "drained"
    result = run_module("ipvs_table", {"services": [{**SERVICE, "reals": reals}]}, netns=netns, diff=True)
    label = f"tcp {VIP}:80 -> 198.51.100.2:80"
    assert result["drained"][0]["removed"] is True, result
    assert result["diff"]["before"][label]["weight"] == 1 and label not in result["diff"]["after"], result["diff"]
    assert [c["action"] for c in result["changes"]] == ["set", "delete"]
