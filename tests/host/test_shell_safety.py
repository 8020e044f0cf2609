"""Hostile strings given to arptables_rule, with the real arptables in a network namespace:
each is either refused with an error naming its option, or reaches arptables as exactly one
argv element and shows in the rule listing as written. No shell ever runs them: the canary
files they would create never appear.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ..integration.arptables.test_arptables_rule import BACKENDS, rule_lines, rule_set
from ..integration.conftest import PROJECT, run
from .conftest import failed

BASE = {"chain": "INPUT", "destination": "198.51.100.70", "jump": "DROP"}
MANGLE = {"chain": "OUTPUT", "source": "198.51.100.70", "jump": "mangle"}

# (option, its hostile value, the rest of the rule, how the error starts); CANARY is a path the
# value would create if a shell ran it.
REFUSED = [
    ("in_interface", "eth0; touch CANARY", BASE, "in_interface: 'eth0; touch CANARY' is not a valid interface name"),
    ("in_interface", "`touch CANARY`", BASE, "in_interface: '`touch CANARY`' is not a valid interface name"),
    ("in_interface", "$(touch CANARY)", BASE, "in_interface: '$(touch CANARY)' is not a valid interface name"),
    ("out_interface", "lo' ; touch CANARY '", {**MANGLE, "mangle_ip_source": "198.51.100.2"}, "out_interface: 'lo' ; touch CANARY '"),
    ("chain", '"a b"', BASE, 'value of chain must be one of: INPUT, OUTPUT, FORWARD, got: "a b"'),
    ("chain", "INPUT; touch CANARY", BASE, "value of chain must be one of: INPUT, OUTPUT, FORWARD, got: INPUT; touch CANARY"),
    ("jump", "DROP$(touch CANARY)", BASE, "value of jump must be one of: ACCEPT, DROP, mangle, got: DROP$(touch CANARY)"),
    ("source", "$(touch CANARY)", BASE, "source: '$(touch CANARY)' is not an IPv4 address"),
    ("destination", "198.51.100.70 && touch CANARY", BASE, "destination: '198.51.100.70 && touch CANARY' is not an IPv4 address"),
    ("destination", "198.51.100.70|touch CANARY", BASE, "destination: '198.51.100.70|touch CANARY' is not an IPv4 address"),
    ("mangle_ip_source", "198.51.100.2;touch CANARY", MANGLE, "mangle_ip_source: '198.51.100.2;touch CANARY' is not an IPv4 address"),
    ("mangle_mac_source", '"02:00:00:00:00:01"', MANGLE, "mangle_mac_source: '\"02:00:00:00:00:01\"' is not a MAC address"),
    ("mangle_mac_destination", "02:00:00:00:00:01' `touch CANARY`", MANGLE, "mangle_mac_destination: '02:00:00:00:00:01' `touch CANARY`' is not a MAC"),
    ("backend", "nft; touch CANARY", BASE, "value of backend must be one of: auto, legacy, nft, got: nft; touch CANARY"),
    ("state", "present$(touch CANARY)", BASE, "value of state must be one of: present, absent, got: present$(touch CANARY)"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("option", "value", "rule", "message"), REFUSED, ids=[f"{n}-{r[0]}" for n, r in enumerate(REFUSED)])
def test_hostile_value_is_refused_naming_the_option(run_module, netns, tmp_path, backend, option, value, rule, message):
    canary = tmp_path / "CANARY"
    run("ip", "netns", "exec", netns, f"arptables-{backend}", "-A", "INPUT", "-d", "198.51.100.1", "-j", "DROP")
    before = rule_set(netns, backend)
    args = {"backend": backend, **rule, option: value.replace("CANARY", str(canary))}
    result = run_module("arptables_rule", args, netns=netns, cwd=tmp_path)
    assert failed(result).startswith(message.replace("CANARY", str(canary))), result["msg"]
    assert rule_set(netns, backend) == before
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("args-")] == []
    assert not canary.exists()


# Interface names the kernel and arptables take that a shell would not leave alone: each would
# run a redirection or an expansion, and those with ">pwn" would create that file in the cwd.
# ~root, $HOME and ${PATH} also catch run_command's own expansion of ~ and $VARS in argv lists.
PASSED = ["$(>pwn1)", "a|>pwn2", "a&>pwn3", "x>pwn4", "$IFS", "{a,b}", "a#b", "~root", "$HOME", "${PATH}"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_shell_characters_in_an_interface_name_reach_arptables_as_one_argument(run_module, netns, tmp_path, backend):
    for number, name in enumerate(PASSED):
        run("ip", "-n", netns, "link", "add", name, "type", "veth", "peer", "name", f"peer{number}")
    work = tmp_path / "cwd"
    work.mkdir()
    for name in PASSED:
        result = run_module("arptables_rule", {**BASE, "backend": backend, "in_interface": name}, netns=netns, cwd=work)
        assert result["rc"] == 0 and not result.get("failed"), result
        binary = result["binary"]
        assert Path(binary).name == f"arptables-{backend}"
        assert result["commands"] == [[binary, "-A", "INPUT", "-j", "DROP", "-i", name, "-d", "198.51.100.70"]], result["commands"]
    assert rule_lines(netns, backend) == [f"-A INPUT -j DROP -i {name} -d 198.51.100.70" for name in PASSED]
    assert list(work.iterdir()) == []
    assert not any((PROJECT / f"pwn{n}").exists() for n in range(1, 5))
