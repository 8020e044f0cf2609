"""Unit tests of _ipvs_ipvsadm: ipvsadm-save's text parsed into ipvs_table's services option and
rendered back, the writes in ipvsadm's words, and the options of a normalised entry (what
gathered, parsed, before and after give) normalising back to the same entry. The lab's
integration tests (tests/integration/ipvs/test_ipvs_table.py) do the same against the kernel."""

from __future__ import annotations

import pytest

from ansible_collections.lvs.dr.plugins.module_utils._ipvs_ipvsadm import command, parse, render
from ansible_collections.lvs.dr.plugins.module_utils._ipvs_spec import IPVSInputError, real_options, service_options, want_real, want_service

# ipvsadm -Sn's lines (Debian 12's ipvsadm 1.31), with -x/-y as render() adds them, and the options parse() makes of them.
CASES = [
    ("-A -t 10.9.0.1:80 -s wlc", {"protocol": "tcp", "address": "10.9.0.1", "port": 80, "scheduler": "wlc", "reals": []}),
    (
        "-A -t 10.9.0.1:80 -s sh -p 600 -M 255.255.255.0 -b sh-fallback,sh-port",
        {
            "protocol": "tcp",
            "address": "10.9.0.1",
            "port": 80,
            "scheduler": "sh",
            "persistent_timeout": 600,
            "persistent_netmask": "255.255.255.0",
            "scheduler_flags": ["sh-fallback", "sh-port"],
            "reals": [],
        },
    ),
    (
        "-A -u 10.9.0.1:5060 -s sh -p 60 --pe sip -o -b sh-port",
        {
            "protocol": "udp",
            "address": "10.9.0.1",
            "port": 5060,
            "scheduler": "sh",
            "persistent_timeout": 60,
            "persistence_engine": "sip",
            "one_packet": True,
            "scheduler_flags": ["sh-port"],
            "reals": [],
        },
    ),
    (
        "-A -t [2001:db8::1]:80 -s rr -p 300 -M 64\n-a -t [2001:db8::1]:80 -r [2001:db8::2]:80 -g -w 1",
        {
            "protocol": "tcp",
            "address": "2001:db8::1",
            "port": 80,
            "scheduler": "rr",
            "persistent_timeout": 300,
            "persistent_netmask": "64",
            "reals": [{"address": "2001:db8::2", "forwarding_method": "dr", "weight": 1}],
        },
    ),
    (
        "-A -u 10.9.0.1:53 -s rr\n-a -u 10.9.0.1:53 -r 10.9.0.5:5353 -m -w 0 -x 9 -y 0",
        {
            "protocol": "udp",
            "address": "10.9.0.1",
            "port": 53,
            "scheduler": "rr",
            "reals": [{"address": "10.9.0.5", "port": 5353, "forwarding_method": "nat", "weight": 0, "upper_threshold": 9}],
        },
    ),
    (
        "-A --sctp-service 10.9.0.1:9 -s mh -b mh-port\n-a --sctp-service 10.9.0.1:9 -r 10.9.0.3:9 -i -w 2 --tun-type gue --tun-port 6080 --tun-remcsum",
        {
            "protocol": "sctp",
            "address": "10.9.0.1",
            "port": 9,
            "scheduler": "mh",
            "scheduler_flags": ["mh-port"],
            "reals": [
                {"address": "10.9.0.3", "forwarding_method": "tunnel", "weight": 2, "tunnel_type": "gue", "tunnel_port": 6080, "tunnel_checksum": "remcsum"}
            ],
        },
    ),
    (
        "-A -f 7 -6 -s rr\n-a -f 7 -6 -r [2001:db8::3]:0 -g -w 1 -x 7 -y 3",
        {
            "fwmark": 7,
            "family": "ipv6",
            "scheduler": "rr",
            "reals": [{"address": "2001:db8::3", "forwarding_method": "dr", "weight": 1, "upper_threshold": 7, "lower_threshold": 3}],
        },
    ),
]


@pytest.mark.parametrize(("text", "options"), CASES)
def test_ipvsadm_save_lines_parse_into_the_services_option_and_render_back(text, options):
    [parsed] = parse(text)
    assert parsed == options
    # and they are the services option: normalised and rendered, the same text
    service = want_service(parsed)
    assert render([{**service, "reals": [want_real(r, service) for r in parsed["reals"]]}]) == text + "\n"


def test_parse_sorts_skips_comments_and_takes_reals_after_their_service():
    text = "# saved\n\n-A -t 10.9.0.1:81 -s rr\n-A -t 10.9.0.1:80 -s rr\n-a -t 10.9.0.1:81 -r 10.9.0.3:81 -g -w 1\n-a -t 10.9.0.1:81 -r 10.9.0.2:81 -g -w 1\n"
    assert [(s["port"], [r["address"] for r in s["reals"]]) for s in parse(text)] == [(80, []), (81, ["10.9.0.2", "10.9.0.3"])]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-C", "line 1 (-C): -C: a rule starts with -A (a service) or -a (a real server)"),
        ("-A -t www:http -s rr", "line 1 (-A -t www:http -s rr): -t www:http: not ADDRESS:PORT (numeric, as ipvsadm -Sn saves"),
        ("-A -t 10.9.0.1:80 -s roundrobin", "-s roundrobin: roundrobin is not one of rr, wrr"),
        ("-A -t 10.9.0.1:80 -s rr -w 3", "-w: does not go on a -A line"),
        ("-A -t 10.9.0.1:80 -s rr --frobnicate", "--frobnicate: not an option of ipvsadm-save's rules"),
        ("-A -t 10.9.0.1:80 -s", "-s: a value must follow"),
        ("-A -s rr", "-A: no service (-t, -u, --sctp-service ADDRESS:PORT or -f MARK)"),
        (
            "-a -t 10.9.0.1:80 -r 10.9.0.2:80 -g -w 1",
            "line 1 (-a -t 10.9.0.1:80 -r 10.9.0.2:80 -g -w 1): a real server of a service that no -A line before it adds",
        ),
        ("-A -t 10.9.0.1:80 -s rr\n-a -t 10.9.0.1:80 -g -w 1", "line 2 (-a -t 10.9.0.1:80 -g -w 1): -a: no real server (-r ADDRESS:PORT)"),
        ("-A -t 10.9.0.1:80 -s rr\n-A -t 10.9.0.1:80 -s wlc", "line 2 (-A -t 10.9.0.1:80 -s wlc): the service is added twice"),
        (
            "-A -t 10.9.0.1:80 -s rr\n-a -t 10.9.0.1:80 -r 10.9.0.2:8080 -g -w 1",
            "line 2 (-a -t 10.9.0.1:80 -r 10.9.0.2:8080 -g -w 1): port: dr forwarding does no port",
        ),
        (
            "-A -t 10.9.0.1:80 -s rr -p 60 -M 255.0.255.0",
            "line 1 (-A -t 10.9.0.1:80 -s rr -p 60 -M 255.0.255.0): persistent_netmask: '255.0.255.0' is not valid",
        ),
    ],
)
def test_a_line_that_does_not_parse_is_named(text, message):
    with pytest.raises(IPVSInputError) as caught:
        parse(text)
    assert message in str(caught.value)


SERVICE = want_service({"protocol": "tcp", "address": "10.9.0.1", "port": 80, "scheduler": "rr", "persistent_timeout": 60, "persistent_netmask": "24"})
FWMARK6 = want_service({"fwmark": 7, "family": "ipv6", "scheduler": "sh", "scheduler_flags": ["sh-port"]})
REAL = want_real({"address": "10.9.0.2", "weight": 3}, SERVICE)
THRESHOLDS = {**REAL, "upper_threshold": 10, "lower_threshold": 5}


@pytest.mark.parametrize(
    ("write", "words"),
    [
        (("service", "add", SERVICE, None, None), "-A -t 10.9.0.1:80 -s rr -p 60 -M 255.255.255.0"),
        (("service", "set", SERVICE, None, SERVICE), "-E -t 10.9.0.1:80 -s rr -p 60 -M 255.255.255.0"),
        (("service", "delete", SERVICE, None, SERVICE), "-D -t 10.9.0.1:80"),
        (("service", "delete", FWMARK6, None, FWMARK6), "-D -f 7 -6"),
        (("real", "add", SERVICE, REAL, None), "-a -t 10.9.0.1:80 -r 10.9.0.2:80 -g -w 3"),
        (("real", "set", SERVICE, THRESHOLDS, REAL), "-e -t 10.9.0.1:80 -r 10.9.0.2:80 -g -w 3 -x 10 -y 5"),
        # an -e without -x/-y would not say that the thresholds go back to 0
        (("real", "set", SERVICE, REAL, THRESHOLDS), "-e -t 10.9.0.1:80 -r 10.9.0.2:80 -g -w 3 -x 0 -y 0"),
        (("real", "delete", SERVICE, REAL, REAL), "-d -t 10.9.0.1:80 -r 10.9.0.2:80"),
    ],
)
def test_each_write_in_ipvsadms_words(write, words):
    assert command(*write) == words


@pytest.mark.parametrize(
    "params",
    [
        {"protocol": "tcp", "address": "10.9.0.1", "port": 80},
        {"protocol": "udp", "address": "10.9.0.1", "port": 53, "scheduler": "sh", "scheduler_flags": ["sh-port"], "one_packet": True},
        {"protocol": "tcp", "address": "10.9.0.1", "port": 80, "persistent_timeout": 60, "persistent_netmask": "255.255.0.0", "persistence_engine": "sip"},
        {"protocol": "tcp", "address": "2001:db8::1", "port": 80, "persistent_timeout": 60, "persistent_netmask": "48"},
        {"fwmark": 9, "family": "ipv6", "scheduler": "rr"},
        {"fwmark": 9, "persistent_timeout": 60},
    ],
)
def test_a_services_options_normalise_back_to_it(params):
    service = want_service(params)
    assert want_service(service_options(service)) == service


@pytest.mark.parametrize(
    ("service", "params"),
    [
        (SERVICE, {"address": "10.9.0.2"}),
        (SERVICE, {"address": "10.9.0.2", "forwarding_method": "masquerading", "port": 8080, "weight": 0, "upper_threshold": 9, "lower_threshold": 2}),
        (SERVICE, {"address": "2001:db8::2", "forwarding_method": "tunnel", "tunnel_type": "gre", "tunnel_checksum": "csum"}),
        (SERVICE, {"address": "10.9.0.2", "forwarding_method": "tunnel", "tunnel_type": "gue", "tunnel_port": 6080}),
        (FWMARK6, {"address": "2001:db8::2"}),
        (FWMARK6, {"address": "2001:db8::2", "port": 443, "forwarding_method": "nat"}),
    ],
)
def test_a_real_servers_options_normalise_back_to_it(service, params):
    real = want_real(params, service)
    assert want_real(real_options(real, service), service) == real
