"""Integration tests of lvs.dr.arptables_rule against the real arptables, each test in a
fresh network namespace, for each backend in LVS_TEST_ARPTABLES_BACKENDS (space-separated,
default "legacy nft"; the UML lab's kernel has no nftables arp family, so it runs "legacy").

The rule set is checked with the backend's own save tool, never with the module's parser.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from ..conftest import run

BACKENDS = os.environ.get("LVS_TEST_ARPTABLES_BACKENDS", "legacy nft").split()
if not BACKENDS or set(BACKENDS) - {"legacy", "nft"}:
    raise pytest.UsageError(f"LVS_TEST_ARPTABLES_BACKENDS must list legacy and/or nft, not {os.environ.get('LVS_TEST_ARPTABLES_BACKENDS')!r}")

VIP, RIP = "172.25.8.100", "172.25.8.2"
SEED_DROP = {"chain": "INPUT", "destination": VIP, "jump": "DROP"}
SEED_MANGLE = {"chain": "OUTPUT", "source": VIP, "jump": "mangle", "mangle_ip_source": RIP}
SEED_LINES = [f"-A INPUT -j DROP -d {VIP}", f"-A OUTPUT -j mangle -s {VIP} --mangle-ip-s {RIP}"]
OTHER_DROP = {"chain": "INPUT", "destination": "198.51.100.50", "jump": "DROP"}
OTHER_LINE = "-A INPUT -j DROP -d 198.51.100.50"
LEGACY_SAVE_SCRIPT = Path("/usr/sbin/arptables-legacy-save")


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def tool_save(netns, backend):
    """The backend's own save output in NETNS. arptables-legacy-save lists with
    /usr/sbin/arptables, whichever backend that alternative points at (nft on this host),
    so it runs with its tool set to arptables-legacy."""
    if backend == "nft":
        return run("ip", "netns", "exec", netns, "arptables-nft-save")
    script = LEGACY_SAVE_SCRIPT.read_text()
    assert '"/usr/sbin/arptables"' in script, "arptables-legacy-save changed: update tool_save"
    return run("ip", "netns", "exec", netns, "perl", "-e", script.replace('"/usr/sbin/arptables"', '"/usr/sbin/arptables-legacy"'))


def without_comments(save):
    """nft's save output without its "# Generated/Completed on <time>" lines."""
    return "".join(line for line in save.splitlines(keepends=True) if not line.startswith("#"))


def rule_set(netns, backend):
    return without_comments(tool_save(netns, backend))


def rule_lines(netns, backend):
    return [line.rstrip() for line in rule_set(netns, backend).splitlines() if line.startswith("-A ")]


def cli(netns, backend, *args):
    run("ip", "netns", "exec", netns, f"arptables-{backend}", *args)


@pytest.fixture
def arptables_rule(run_module, netns, backend):
    """Run the module in the test's namespace with the test's backend."""

    def _run(args, check=False, diff=False):
        return run_module("arptables_rule", {"backend": backend, **args}, netns=netns, check=check, diff=diff)

    return _run


def ok(result):
    assert result["rc"] == 0 and not result.get("failed"), result
    return result


def test_create_reports_changed(arptables_rule, netns, backend):
    result = ok(arptables_rule(SEED_DROP))
    assert result["changed"] is True
    assert (result["backend"], Path(result["binary"]).name) == (backend, f"arptables-{backend}")
    assert rule_lines(netns, backend) == SEED_LINES[:1]
    assert without_comments(result["save"]) == rule_set(netns, backend)
    assert result["rule"] == {
        "chain": "INPUT",
        "jump": "DROP",
        "source": None,
        "destination": VIP,
        "in_interface": None,
        "out_interface": None,
        "mangle_ip_source": None,
        "mangle_ip_destination": None,
        "mangle_mac_source": None,
        "mangle_mac_destination": None,
        "extra": [],
    }
    assert result["rules"] == [result["rule"]]


def test_rerun_is_not_changed(arptables_rule, netns, backend):
    ok(arptables_rule(SEED_DROP))
    before = rule_set(netns, backend)
    result = ok(arptables_rule({**SEED_DROP, "destination": f"{VIP}/32"}))
    assert result["changed"] is False
    assert result["commands"] == []
    assert rule_set(netns, backend) == before


# The nft backend only, on the host (scripts/test installs it there); the guest runs none of the
# nft tests: its kernel has no nftables arp family.
def test_nft_save_is_the_same_on_every_run_and_restores(run_module, netns):
    # arptables-nft-save stamps its output with the time; a copy of `save` must not change
    # on a run that changed nothing, and must still restore the rule set.
    first = ok(run_module("arptables_rule", {**SEED_DROP, "backend": "nft"}, netns=netns))
    time.sleep(1.1)
    second = ok(run_module("arptables_rule", {**SEED_DROP, "backend": "nft"}, netns=netns))
    assert second["changed"] is False
    assert second["save"] == first["save"]
    assert second["save"] == rule_set(netns, "nft")
    cli(netns, "nft", "-F")
    subprocess.run(["ip", "netns", "exec", netns, "arptables-nft-restore"], input=second["save"], text=True, check=True)
    assert rule_lines(netns, "nft") == SEED_LINES[:1]


def nft_chain(netns, chain):
    """The chain's rules as nft prints them (every match), without the implicit ARP header matches and counters."""
    text = run("ip", "netns", "exec", netns, "nft", "list", "chain", "arp", "filter", chain)
    rules = [line.strip() for line in text.splitlines() if "arp htype 1 arp hlen 6 arp plen 4" in line]
    return [" ".join(rule.replace("arp htype 1 arp hlen 6 arp plen 4 ", "").replace("counter packets 0 bytes 0 ", "").split()) for rule in rules]


def test_nft_rule_with_a_match_the_save_does_not_show_is_foreign(run_module, netns):
    # arptables-nft 1.8.9 prints this rule as "-A INPUT -j DROP -d VIP": without its masked MAC match.
    cli(netns, "nft", "-A", "INPUT", "--source-mac", "02:00:00:00:00:01/ff:ff:ff:00:00:00", "-d", VIP, "-j", "DROP")
    foreign = f"arp saddr ether 02:00:00:00:00:00/24 arp daddr ip {VIP} drop"
    ours = f"arp daddr ip {VIP} drop"
    assert nft_chain(netns, "INPUT") == [foreign]
    present = ok(run_module("arptables_rule", {**SEED_DROP, "backend": "nft"}, netns=netns))
    assert present["changed"] is True
    assert nft_chain(netns, "INPUT") == [foreign, ours]
    inserted = ok(run_module("arptables_rule", {**OTHER_DROP, "backend": "nft", "action": "insert", "rule_num": 2}, netns=netns))
    assert inserted["changed"] is True
    assert nft_chain(netns, "INPUT") == [foreign, "arp daddr ip 198.51.100.50 drop", ours]
    assert ok(run_module("arptables_rule", {**SEED_DROP, "backend": "nft"}, netns=netns))["changed"] is False
    absent = ok(run_module("arptables_rule", {**SEED_DROP, "backend": "nft", "state": "absent"}, netns=netns, diff=True))
    assert absent["changed"] is True
    assert nft_chain(netns, "INPUT") == [foreign, "arp daddr ip 198.51.100.50 drop"]
    assert ok(run_module("arptables_rule", {**SEED_DROP, "backend": "nft", "state": "absent"}, netns=netns))["changed"] is False
    assert nft_chain(netns, "INPUT") == [foreign, "arp daddr ip 198.51.100.50 drop"]


def test_check_mode_reports_the_change_and_changes_nothing(arptables_rule, netns, backend):
    cli(netns, backend, "-A", "INPUT", "-d", VIP, "-j", "DROP")
    before = rule_set(netns, backend)
    predicted = ok(arptables_rule(OTHER_DROP, check=True))
    assert predicted["changed"] is True
    assert rule_set(netns, backend) == before
    assert without_comments(predicted["save"]) == before
    real = ok(arptables_rule(OTHER_DROP))
    assert real["changed"] is True
    assert real["rules"] == predicted["rules"]
    assert rule_lines(netns, backend) == [SEED_LINES[0], OTHER_LINE]


def test_check_mode_on_a_present_rule_is_not_changed(arptables_rule, netns, backend):
    ok(arptables_rule(SEED_DROP))
    assert ok(arptables_rule(SEED_DROP, check=True))["changed"] is False


def test_diff_shows_the_chain_before_and_after(arptables_rule, netns, backend):
    cli(netns, backend, "-A", "INPUT", "-d", VIP, "-j", "DROP")
    predicted = ok(arptables_rule(OTHER_DROP, check=True, diff=True))
    assert predicted["diff"] == {"before": f"{SEED_LINES[0]}\n", "after": f"{SEED_LINES[0]}\n{OTHER_LINE}\n"}
    real = ok(arptables_rule(OTHER_DROP, diff=True))
    assert real["diff"] == predicted["diff"]
    assert real["diff"]["after"] == "".join(f"{line}\n" for line in rule_lines(netns, backend))
    removed = ok(arptables_rule({**OTHER_DROP, "state": "absent"}, diff=True))
    assert removed["diff"] == {"before": predicted["diff"]["after"], "after": predicted["diff"]["before"]}


def test_seed_rules_are_written_exactly_and_found_again(arptables_rule, netns, backend):
    assert ok(arptables_rule(SEED_DROP))["changed"] is True
    assert ok(arptables_rule(SEED_MANGLE))["changed"] is True
    assert rule_lines(netns, backend) == SEED_LINES
    assert ok(arptables_rule(SEED_DROP))["changed"] is False
    assert ok(arptables_rule(SEED_MANGLE))["changed"] is False


def test_seed_rules_made_by_hand_are_found(arptables_rule, netns, backend):
    # What the seed scenario's script runs, so a host set up by hand is not given copies.
    cli(netns, backend, "-A", "INPUT", "-d", VIP, "-j", "DROP")
    cli(netns, backend, "-A", "OUTPUT", "-s", VIP, "-j", "mangle", "--mangle-ip-s", RIP)
    before = rule_set(netns, backend)
    assert ok(arptables_rule(SEED_DROP))["changed"] is False
    assert ok(arptables_rule(SEED_MANGLE))["changed"] is False
    assert rule_set(netns, backend) == before


def test_insert_puts_the_rule_first(arptables_rule, netns, backend):
    ok(arptables_rule(SEED_DROP))
    ok(arptables_rule({**SEED_DROP, "destination": "198.51.100.51"}))
    assert ok(arptables_rule({**OTHER_DROP, "action": "insert"}))["changed"] is True
    assert rule_lines(netns, backend) == [OTHER_LINE, SEED_LINES[0], "-A INPUT -j DROP -d 198.51.100.51"]
    assert ok(arptables_rule({**SEED_DROP, "destination": "198.51.100.52", "action": "insert", "rule_num": 3}))["changed"] is True
    assert rule_lines(netns, backend)[2] == "-A INPUT -j DROP -d 198.51.100.52"
    # A rule already in the chain is not moved.
    assert ok(arptables_rule({**SEED_DROP, "action": "insert"}))["changed"] is False


def test_absent_removes_the_rule(arptables_rule, netns, backend):
    ok(arptables_rule(SEED_DROP))
    ok(arptables_rule(SEED_MANGLE))
    result = ok(arptables_rule({**SEED_DROP, "state": "absent"}))
    assert result["changed"] is True
    assert rule_lines(netns, backend) == SEED_LINES[1:]
    assert result["rules"] == []


def test_absent_removes_every_copy(arptables_rule, netns, backend):
    for destination in (VIP, "198.51.100.60", VIP):
        cli(netns, backend, "-A", "INPUT", "-d", destination, "-j", "DROP")
    assert ok(arptables_rule({**SEED_DROP, "state": "absent"}))["changed"] is True
    assert rule_lines(netns, backend) == ["-A INPUT -j DROP -d 198.51.100.60"]


def test_absent_of_a_missing_rule_is_not_changed(arptables_rule, netns, backend):
    ok(arptables_rule(SEED_MANGLE))
    before = rule_set(netns, backend)
    result = ok(arptables_rule({**SEED_DROP, "state": "absent"}))
    assert result["changed"] is False
    assert rule_set(netns, backend) == before


def test_mangle_rule_with_mac(arptables_rule, netns, backend):
    args = {**SEED_MANGLE, "mangle_mac_source": "02:00:AC:19:08:02", "mangle_ip_destination": "198.51.100.3", "mangle_mac_destination": "02:00:00:00:00:bb"}
    assert ok(arptables_rule(args))["changed"] is True
    h_length = "--h-length 6 " if backend == "legacy" else ""
    assert rule_lines(netns, backend) == [
        f"-A OUTPUT -j mangle -s {VIP} {h_length}--mangle-ip-s {RIP} --mangle-mac-s 02:00:ac:19:08:02 "
        "--mangle-ip-d 198.51.100.3 --mangle-mac-d 02:00:00:00:00:bb"
    ]
    assert ok(arptables_rule(args))["changed"] is False
    assert ok(arptables_rule({**args, "state": "absent"}))["changed"] is True
    assert rule_lines(netns, backend) == []


def test_interfaces_that_exist(arptables_rule, netns, backend):
    run("ip", "-n", netns, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
    accept = {"chain": "INPUT", "in_interface": "veth0", "source": "198.51.100.0/24", "jump": "ACCEPT"}
    mangle = {**SEED_MANGLE, "out_interface": "veth1"}
    assert ok(arptables_rule(accept))["changed"] is True
    assert ok(arptables_rule(mangle))["changed"] is True
    assert rule_lines(netns, backend) == [
        "-A INPUT -j ACCEPT -i veth0 -s 198.51.100.0/24",
        f"-A OUTPUT -j mangle -o veth1 -s {VIP} --mangle-ip-s {RIP}",
    ]
    assert ok(arptables_rule({**accept, "source": "198.51.100.77/24"}))["changed"] is False
    assert ok(arptables_rule(mangle))["changed"] is False


def test_forward_chain(arptables_rule, netns, backend):
    run("ip", "-n", netns, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
    forward = {"chain": "FORWARD", "in_interface": "veth0", "out_interface": "veth1", "jump": "DROP"}
    result = arptables_rule(forward)
    if backend == "legacy":
        assert ok(result)["changed"] is True
        assert rule_lines(netns, backend) == ["-A FORWARD -j DROP -i veth0 -o veth1"]
    else:
        assert result["rc"] != 0 and result["failed"]
        assert result["msg"].startswith("chain: FORWARD does not exist in the nft backend's filter table")
        assert rule_set(netns, backend) == ""


BAD_INPUTS = [
    ({"source": "172.25.8.256"}, "source: '172.25.8.256' is not an IPv4 address"),
    ({"destination": "172.25.8.100/33"}, "destination: '172.25.8.100/33' is not an IPv4 address"),
    ({"destination": "172.25.8.100 -j ACCEPT"}, "destination: '172.25.8.100 -j ACCEPT' is not"),
    ({"destination": "172.25.8.100; touch PWNED"}, "destination: '172.25.8.100; touch PWNED' is not"),
    ({"jump": "mangle", "mangle_ip_source": "172.25.8.2/24"}, "mangle_ip_source: '172.25.8.2/24' is not an IPv4 address"),
    ({"jump": "mangle", "mangle_mac_source": "02:00:00:00:00"}, "mangle_mac_source: '02:00:00:00:00' is not a MAC address"),
    ({"jump": "mangle", "mangle_mac_destination": "02:00:00:00:00:zz"}, "mangle_mac_destination: '02:00:00:00:00:zz' is not a MAC"),
    ({"jump": "DROP", "mangle_ip_source": RIP}, "mangle_ip_source: only allowed with jump=mangle"),
    ({"jump": "mangle"}, "jump is mangle but any of the following are missing: mangle_ip_source, mangle_ip_destination"),
    ({"in_interface": "veth0 veth1"}, "in_interface: 'veth0 veth1' is not a valid interface name"),
    ({"in_interface": "lo'; touch PWNED #"}, "in_interface: 'lo'; touch PWNED #' is not a valid interface name"),
    ({"in_interface": 'lo"'}, "in_interface: 'lo\"' is not a valid interface name"),
    ({"in_interface": "lo;reboot"}, "in_interface: 'lo;reboot' is not a valid interface name"),
    ({"in_interface": "abcdefghijklmnop"}, "in_interface: 'abcdefghijklmnop' is not a valid interface name; it has 1 to 15 characters"),
    ({"in_interface": "lo/x"}, "in_interface: 'lo/x' is not a valid interface name"),
    ({"in_interface": "nosuch0"}, "in_interface: there is no interface 'nosuch0' on this host; it has lo"),
    ({"chain": "OUTPUT", "jump": "DROP", "in_interface": "lo"}, "in_interface: arptables has no input interface in chain OUTPUT"),
    ({"chain": "PREROUTING"}, "value of chain must be one of: INPUT, OUTPUT, FORWARD"),
    ({"jump": "REJECT"}, "value of jump must be one of: ACCEPT, DROP, mangle"),
    ({"backend": "iptables"}, "value of backend must be one of: auto, legacy, nft"),
    ({"state": "gone"}, "value of state must be one of: present, absent"),
    ({"action": "insert", "rule_num": 0}, "rule_num: 0 is out of range"),
    ({"action": "insert", "rule_num": 3}, "rule_num: 3 is out of range; chain INPUT has 1 rules, so use 1 to 2"),
    ({"rule_num": 1}, "rule_num: only used with action=insert"),
]


@pytest.mark.bad_input("arptables_rule")
@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[f"{n}-{'-'.join(args)}" for n, (args, _message) in enumerate(BAD_INPUTS)])
def test_bad_input_fails_naming_the_option_and_changes_nothing(arptables_rule, netns, backend, tmp_path, args, message):
    cli(netns, backend, "-A", "INPUT", "-d", VIP, "-j", "DROP")
    before = rule_set(netns, backend)
    pwned = tmp_path / "pwned"
    args = {name: value.replace("PWNED", str(pwned)) if isinstance(value, str) else value for name, value in args.items()}
    result = arptables_rule({"chain": "INPUT", "destination": "198.51.100.70", "jump": "DROP", **args})
    assert result["rc"] != 0 and result["failed"] is True, result
    assert message.replace("PWNED", str(pwned)) in result["msg"]
    assert rule_set(netns, backend) == before
    assert not pwned.exists()


def default_backend():
    """What /usr/sbin/arptables points at, asked the way an admin would."""
    version = subprocess.run(["arptables", "-V"], capture_output=True, text=True, check=False)
    return "nft" if "nf_tables" in version.stdout + version.stderr else "legacy"


def adds_rules(backend):
    """Whether BACKEND can add a rule on this kernel, tried in a throwaway network namespace."""
    argv = ["unshare", "--net", "--", f"arptables-{backend}", "-A", "INPUT", "-j", "ACCEPT"]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def test_auto_reports_the_backend_it_used(run_module, netns):
    # auto takes the default backend if it works here, else the other one with a warning.
    default = default_backend()
    expected = default if adds_rules(default) else {"legacy": "nft", "nft": "legacy"}[default]
    result = ok(run_module("arptables_rule", SEED_DROP, netns=netns))
    assert (result["backend"], Path(result["binary"]).name) == (expected, f"arptables-{expected}")
    assert rule_lines(netns, expected) == SEED_LINES[:1]
    warnings = " ".join(result.get("warnings", []))
    if expected == default:
        assert "cannot list the rule set" not in warnings
    else:
        assert f"points at the {default} backend, which cannot list the rule set" in warnings
