"""The director role's saved table against the lab's kernel: a table with every option
ipvsadm-save prints, and thresholds, is read once by lvs.dr.ipvs_info and written by the
lvs.dr.ipvsadm_rules filter. The text is ipvsadm-save -n's, plus -x/-y, and ipvsadm-restore of
it in a fresh namespace gives the same table, thresholds included."""

from __future__ import annotations

import importlib
import subprocess
import sys

from ..conftest import run
from .conftest import ipvs_table

# Made by ipvsadm-restore; the order is what ipvsadm-save prints.
TABLE = """\
-A -t 10.9.0.1:80 -s sh -p 600 -M 255.255.255.0 -b sh-port
-a -t 10.9.0.1:80 -r 10.9.0.2:80 -g -w 3 -x 1000 -y 500
-a -t 10.9.0.1:80 -r 10.9.0.3:80 -i -w 2 --tun-type gue --tun-port 6080 --tun-remcsum
-a -t 10.9.0.1:80 -r 10.9.0.4:80 -i -w 2 --tun-type gre --tun-nocsum
-A -u 10.9.0.1:53 -s sh -b sh-fallback,sh-port
-a -u 10.9.0.1:53 -r 10.9.0.5:5353 -m -w 0 -x 9 -y 0
-A -u 10.9.0.1:5060 -s sh -p 60 --pe sip -o -b sh-port
-A --sctp-service 10.9.0.1:9 -s mh -b mh-port
-a --sctp-service 10.9.0.1:9 -r 10.9.0.7:9 -i -w 1 --tun-type ipip
-A -t [2001:db8::1]:80 -s rr -p 300 -M 64
-a -t [2001:db8::1]:80 -r [2001:db8::2]:80 -g -w 1
-A -f 7 -s rr -o
-a -f 7 -r 10.9.0.6:0 -g -w 1
-A -f 7 -6 -s rr
-a -f 7 -6 -r [2001:db8::3]:0 -g -w 1 -x 7 -y 3
"""


def ipvsadm_rules(services: list, collections_path) -> str:
    """The filter, imported as Ansible does (it imports the collection's module_utils)."""
    if str(collections_path) not in sys.path:
        sys.path.insert(0, str(collections_path))
    return importlib.import_module("ansible_collections.lvs.dr.plugins.filter.ipvsadm_rules").ipvsadm_rules(services)


def restore(netns: str, text: str) -> None:
    # Real servers need a route: one link on their networks.
    run("ip", "-n", netns, "link", "add", "d0", "type", "dummy")
    run("ip", "-n", netns, "addr", "add", "10.9.0.254/24", "dev", "d0")
    run("ip", "-n", netns, "addr", "add", "2001:db8::ff/64", "dev", "d0", "nodad")
    run("ip", "-n", netns, "link", "set", "d0", "up")
    subprocess.run(["ip", "netns", "exec", netns, "ipvsadm-restore"], input=text, text=True, check=True)


def thresholds(netns: str) -> str:
    return run("ip", "netns", "exec", netns, "ipvsadm", "-Ln", "--thresholds")


def test_one_read_gives_ipvsadm_saves_lines_and_thresholds_and_restores_the_table(netns, run_module, collections_path):
    restore(netns, TABLE)
    info = run_module("ipvs_info", {}, netns=netns)
    assert info["rc"] == 0, info
    text = ipvsadm_rules(info["services"], collections_path)
    assert text == TABLE
    # without -x/-y, each line is ipvsadm-save's
    saved = ipvs_table(netns)
    assert [line.split(" -x ")[0] for line in text.splitlines()] == saved.splitlines()

    again = f"{netns}-again"
    run("ip", "netns", "add", again)
    try:
        restore(again, text)
        assert ipvs_table(again) == saved
        assert thresholds(again) == thresholds(netns)
    finally:
        subprocess.run(["ip", "netns", "del", again], check=False)
