# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""IPVS entries in ipvsadm's words: the rules text that ipvsadm-save prints and ipvsadm-restore
reads (rendered and parsed), and each write as the ipvsadm command that does the same.

PRIVATE to the collection: not a public API, it may change without notice.

Pure: no kernel, no Ansible; entries are _ipvs_spec's normalised ones. The one place for these
words: the ipvsadm_rules filter (the director role's saved table) and ipvs_table's rendered,
parsed and commands all come from here.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.lvs.dr.plugins.module_utils._ipvs_spec import (
    PERSISTENCE_ENGINES,
    SCHEDULER_FLAGS,
    SCHEDULERS,
    TUNNEL_TYPES,
    IPVSInputError,
    real_key,
    real_options,
    service_key,
    service_options,
    want_real,
    want_service,
)

PROTOCOL_OPTIONS = {"tcp": "-t", "udp": "-u", "sctp": "--sctp-service"}
PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132}
# The kernel's local and bypass methods: ipvsadm-save prints them as -g.
METHOD_OPTIONS = {"dr": "-g", "local": "-g", "bypass": "-g", "tunnel": "-i", "nat": "-m"}
COMMANDS = {
    ("service", "add"): "-A",
    ("service", "set"): "-E",
    ("service", "delete"): "-D",
    ("real", "add"): "-a",
    ("real", "set"): "-e",
    ("real", "delete"): "-d",
}


# --- render ------------------------------------------------------------------------------------


def host(address, port):
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def service_args(service):
    """What names the service on every line: -t VIP:PORT, or -f MARK [-6]."""
    if service.get("fwmark"):
        return f"-f {service['fwmark']}" + (" -6" if service["family"] == "ipv6" else "")
    return f"{PROTOCOL_OPTIONS[service['protocol']]} {host(service['address'], service['port'])}"


def service_line(service, command="-A"):
    line = f"{command} {service_args(service)} -s {service['scheduler']}"
    if service.get("persistent_timeout"):
        line += f" -p {service['persistent_timeout']}"
        prefix = service.get("persistent_netmask")
        if service["family"] == "ipv6" and prefix not in (None, 128):
            line += f" -M {prefix}"
        elif service["family"] == "ipv4" and prefix not in (None, 32):
            line += f" -M {ipaddress.ip_network(f'0.0.0.0/{prefix}').netmask}"
    if service.get("persistence_engine"):
        line += f" --pe {service['persistence_engine']}"
    if service.get("one_packet"):
        line += " -o"
    if service.get("scheduler_flags"):
        line += f" -b {','.join(service['scheduler_flags'])}"
    return line


def real_line(service, real, command="-a", thresholds=False):
    """An -a (or -e) line. Thresholds go as -x/-y when one is set, or with THRESHOLDS (an -e that
    clears them): ipvsadm-save leaves them out, ipvsadm-restore takes them."""
    line = f"{command} {service_args(service)} -r {host(real['address'], real['port'])} {METHOD_OPTIONS[real['forwarding_method']]} -w {real['weight']}"
    if real.get("tunnel_type"):
        line += f" --tun-type {real['tunnel_type']}"
        if real.get("tunnel_port"):
            line += f" --tun-port {real['tunnel_port']}"
        if real.get("tunnel_checksum"):
            line += f" --tun-{real['tunnel_checksum']}"
    if thresholds or real.get("upper_threshold") or real.get("lower_threshold"):
        line += f" -x {real.get('upper_threshold') or 0} -y {real.get('lower_threshold') or 0}"
    return line


def service_order(service):
    address = ipaddress.ip_address(service["address"]) if service.get("address") else None
    protocol = PROTOCOL_NUMBERS[service["protocol"]] if service.get("protocol") else 0
    return (service.get("fwmark") or 0, service["family"] == "ipv6", protocol, int(address) if address else 0, service.get("port") or 0)


def real_order(real):
    address = ipaddress.ip_address(real["address"])
    return (address.version, int(address), real["port"])


def render(services):
    """The rules of SERVICES ([service with "reals": [real]], normalised), sorted by service
    (firewall mark, family, protocol, address, port) and real server, so the text changes only
    when the table does; each line ends in a newline."""
    lines = []
    for service in sorted(services, key=service_order):
        lines.append(service_line(service))
        lines += [real_line(service, real) for real in sorted(service.get("reals") or [], key=real_order)]
    return "".join(line + "\n" for line in lines)


def command(what, action, service, real, before=None):
    """The ipvsadm command of one write (_ipvs_plan's Change: what, action, service, real, and
    the entry BEFORE it): -A/-E/-D for services, -a/-e/-d for real servers."""
    word = COMMANDS[what, action]
    if what == "service":
        return f"{word} {service_args(service)}" if action == "delete" else service_line(service, word)
    if action == "delete":
        return f"{word} {service_args(service)} -r {host(real['address'], real['port'])}"
    cleared = bool(before and (before.get("upper_threshold") or before.get("lower_threshold")))
    return real_line(service, real, word, thresholds=cleared)


def as_services(table):
    """The services option (input shape: options left out at their defaults) of TABLE, [(service,
    [real])] normalised, in render()'s order."""
    return [
        {**service_options(service), "reals": [real_options(r, service) for r in sorted(reals, key=real_order)]}
        for service, reals in sorted(table, key=lambda entry: service_order(entry[0]))
    ]


# --- parse -------------------------------------------------------------------------------------

KINDS = {"-t": "tcp", "--tcp-service": "tcp", "-u": "udp", "--udp-service": "udp", "--sctp-service": "sctp", "-f": None, "--fwmark-service": None}
METHODS = {"-g": "dr", "--gatewaying": "dr", "-i": "tunnel", "--ipip": "tunnel", "-m": "nat", "--masquerading": "nat"}
CHECKSUMS = {"--tun-nocsum": "nocsum", "--tun-csum": "csum", "--tun-remcsum": "remcsum"}
# option -> (the line it belongs on, the option of ipvs_table, how its value is read)
VALUES = {
    "-s": ("-A", "scheduler", SCHEDULERS),
    "--scheduler": ("-A", "scheduler", SCHEDULERS),
    "-p": ("-A", "persistent_timeout", int),
    "--persistent": ("-A", "persistent_timeout", int),
    "-M": ("-A", "persistent_netmask", str),
    "--netmask": ("-A", "persistent_netmask", str),
    "--pe": ("-A", "persistence_engine", PERSISTENCE_ENGINES),
    "-b": ("-A", "scheduler_flags", SCHEDULER_FLAGS),
    "--sched-flags": ("-A", "scheduler_flags", SCHEDULER_FLAGS),
    "-w": ("-a", "weight", int),
    "--weight": ("-a", "weight", int),
    "-x": ("-a", "upper_threshold", int),
    "--u-threshold": ("-a", "upper_threshold", int),
    "-y": ("-a", "lower_threshold", int),
    "--l-threshold": ("-a", "lower_threshold", int),
    "--tun-type": ("-a", "tunnel_type", TUNNEL_TYPES),
    "--tun-port": ("-a", "tunnel_port", int),
}


def split_host(text, option):
    """ADDRESS:PORT or [IPV6]:PORT as (address, port)."""
    address, sep, port = text.rpartition(":")
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    if not sep or not port.isdigit():
        raise IPVSInputError(f"{option} {text}: not ADDRESS:PORT (numeric, as ipvsadm -Sn saves; ipvsadm -S without -n names hosts and ports)")
    return address, int(port)


def read_value(option, text):
    _line, name, kind = VALUES[option]
    if kind is int:
        if not text.isdigit():
            raise IPVSInputError(f"{option} {text}: not a number")
        return int(text)
    if kind is str:
        return text
    values = text.split(",") if name == "scheduler_flags" else [text]
    wrong = [v for v in values if v not in kind]
    if wrong:
        raise IPVSInputError(f"{option} {text}: {', '.join(wrong)} is not one of {', '.join(kind)}")
    return values if name == "scheduler_flags" else text


def parse_line(words):
    """One rule (-A or -a, as words) as (command, service options, real options or None)."""
    command = words[0]
    if command not in ("-A", "--add-service", "-a", "--add-server"):
        raise IPVSInputError(f"{command}: a rule starts with -A (a service) or -a (a real server), as ipvsadm-save writes them")
    command = "-A" if command in ("-A", "--add-service") else "-a"
    service, real = {"protocol": None}, {} if command == "-a" else None
    i = 1
    while i < len(words):
        option = words[i]
        takes = option in KINDS or option in VALUES or option in ("-r", "--real-server")
        if takes and i + 1 == len(words):
            raise IPVSInputError(f"{option}: a value must follow")
        value = words[i + 1] if takes else None
        if option in KINDS:
            service["protocol"] = KINDS[option]
            if KINDS[option] is None:
                if not value.isdigit():
                    raise IPVSInputError(f"{option} {value}: not a firewall mark (a number)")
                service["fwmark"] = int(value)
            else:
                service["address"], service["port"] = split_host(value, option)
        elif option in ("-6", "--ipv6"):
            service["family"] = "ipv6"
        elif option in ("-o", "--ops"):
            service["one_packet"] = True
        elif option in ("-r", "--real-server") and real is not None:
            real["address"], real["port"] = split_host(value, option)
        elif option in METHODS and real is not None:
            real["forwarding_method"] = METHODS[option]
        elif option in CHECKSUMS and real is not None:
            real["tunnel_checksum"] = CHECKSUMS[option]
        elif option in VALUES and VALUES[option][0] == command:
            (real if command == "-a" else service)[VALUES[option][1]] = read_value(option, value)
        else:
            known = option in KINDS or option in VALUES or option in METHODS or option in CHECKSUMS or option in ("-r", "--real-server")
            raise IPVSInputError(f"{option}: " + (f"does not go on a {command} line" if known else "not an option of ipvsadm-save's rules"))
        i += 2 if takes else 1
    if "address" not in service and "fwmark" not in service:
        raise IPVSInputError(f"{command}: no service (-t, -u, --sctp-service ADDRESS:PORT or -f MARK)")
    if real is not None and "address" not in real:
        raise IPVSInputError("-a: no real server (-r ADDRESS:PORT)")
    return command, service, real


def parse(text):
    """ipvsadm-save's rules (ipvsadm -Sn's, or render()'s with -x/-y) as the services option, in
    render()'s order; blank lines and # comments are skipped. IPVSInputError names the line."""
    services, reals = {}, {}
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        try:
            command, params, real_params = parse_line(words)
            if params.get("fwmark") is not None:
                params.pop("protocol")
            service = want_service(params)
            key = service_key(service)
            if command == "-A":
                if key in services:
                    raise IPVSInputError("the service is added twice")
                services[key], reals[key] = service, {}
                continue
            if key not in services:
                raise IPVSInputError("a real server of a service that no -A line before it adds")
            real = want_real(real_params, services[key])
            if real_key(real) in reals[key]:
                raise IPVSInputError("the real server is added twice")
            reals[key][real_key(real)] = real
        except IPVSInputError as exc:
            raise IPVSInputError(f"line {number} ({line.strip()}): {exc}") from None
    return as_services([(service, list(reals[key].values())) for key, service in services.items()])
