# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""arptables rules as plain dicts: build the wanted rule from module parameters, parse the
backend's save output into the same shape, diff, and run arptables with argv lists.

PRIVATE to the collection: not a public API, it may change without notice.

One normalised rule shape serves both sides, so equal dicts mean the same rule:
chain, jump, source, destination, in_interface, out_interface, mangle_ip_source,
mangle_ip_destination, mangle_mac_source, mangle_mac_destination (None when not set) and
extra, the save tokens this module does not manage (a negation, --opcode ...), in order.

Two backends: legacy (arptables-legacy, Debian's package arptables) and nft
(arptables-nft, Debian's package iptables). Both print a rule with -j first; legacy ends
each rule line with a space, nft frames its save output with "# Generated/Completed on
<time>" comments (left out here) and prints nothing at all while its arp table does not exist yet.
"""

from __future__ import annotations

import ipaddress
import os
import re

CHAINS = ("INPUT", "OUTPUT", "FORWARD")
JUMPS = ("ACCEPT", "DROP", "mangle")
BACKENDS = ("legacy", "nft")
MANGLE_OPTIONS = ("mangle_ip_source", "mangle_ip_destination", "mangle_mac_source", "mangle_mac_destination")
RULE_FIELDS = ("chain", "jump", "source", "destination", "in_interface", "out_interface", *MANGLE_OPTIONS, "extra")

# Both backends print options in this order, so rules rendered from it read like theirs.
MATCH_FLAGS = (("-j", "jump"), ("-i", "in_interface"), ("-o", "out_interface"), ("-s", "source"), ("-d", "destination"))
MANGLE_FLAGS = (
    ("--mangle-ip-s", "mangle_ip_source"),
    ("--mangle-mac-s", "mangle_mac_source"),
    ("--mangle-ip-d", "mangle_ip_destination"),
    ("--mangle-mac-d", "mangle_mac_destination"),
)
FIELD_OF_FLAG = dict(MATCH_FLAGS + MANGLE_FLAGS)
# legacy refuses to mangle a MAC address without it and prints it back; nft implies it and never prints it.
HLEN_ARGS = ["--h-length", "6"]

BINARIES = {"legacy": "arptables-legacy", "nft": "arptables-nft"}
NFT_SAVE_BINARY = "arptables-nft-save"
PACKAGES = {"legacy": "arptables (Debian, Ubuntu, RHEL)", "nft": "iptables (Debian, Ubuntu) or iptables-nft (RHEL)"}
OTHER_BACKEND = {"legacy": "nft", "nft": "legacy"}
# The chains of a filter table that does not exist yet: nftables' arp family has no forward hook.
DEFAULT_CHAINS = {"legacy": ("INPUT", "OUTPUT", "FORWARD"), "nft": ("INPUT", "OUTPUT")}

IFNAMSIZ = 16
# The kernel forbids '/', ':' and whitespace; arptables gives '!' and '*' meanings; quotes and ';' are never names.
BAD_INTERFACE_CHARS = re.compile(r"[/:\s'\"`;!*\\]")
MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
SYS_CLASS_NET = "/sys/class/net"


class ArptablesInputError(ValueError):
    """A parameter arptables must never see; the message names the option and what is allowed."""


# --- the wanted rule ----------------------------------------------------------------------


def normalise_network(value, option):
    """ADDRESS or ADDRESS/PREFIX as arptables prints it: host bits cleared, no /32, None for /0 (any)."""
    text = str(value).strip()
    _address, slash, prefix = text.partition("/")
    try:
        if slash and not prefix.isdigit():
            # ipaddress would also take a netmask or a hostmask here, which arptables reads differently.
            raise ValueError(prefix)
        network = ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise ArptablesInputError(
            f"{option}: '{value}' is not an IPv4 address with an optional /prefix; use for example 198.51.100.1 or 198.51.100.0/24 (prefix 0-32)"
        ) from None
    if network.prefixlen == 0:
        return None
    return str(network.network_address) if network.prefixlen == 32 else str(network)


def normalise_address(value, option):
    try:
        return str(ipaddress.IPv4Address(str(value).strip()))
    except ValueError:
        raise ArptablesInputError(f"{option}: '{value}' is not an IPv4 address; mangling writes one address, with no /prefix") from None


def normalise_mac(value, option):
    text = str(value).strip()
    if not MAC.match(text):
        raise ArptablesInputError(f"{option}: '{value}' is not a MAC address; use six hex pairs separated by colons, for example 02:00:00:00:00:01")
    return text.lower()


def check_interface_name(value, option):
    if not value or len(value) >= IFNAMSIZ or value in (".", "..") or BAD_INTERFACE_CHARS.search(value):
        raise ArptablesInputError(
            f"{option}: '{value}' is not a valid interface name; it has 1 to {IFNAMSIZ - 1} characters, "
            "none of them whitespace, quotes, / : ; ! * or a backslash"
        )
    return value


def build_wanted_rule(params):
    """The rule the parameters describe, normalised; ArptablesInputError names a bad option."""
    chain, jump = params["chain"], params["jump"]
    given = [option for option in MANGLE_OPTIONS if params.get(option) is not None]
    if given and jump != "mangle":
        raise ArptablesInputError(f"{', '.join(given)}: only allowed with jump=mangle, and jump is {jump}")
    if params.get("in_interface") is not None and chain == "OUTPUT":
        raise ArptablesInputError("in_interface: arptables has no input interface in chain OUTPUT; use it with chain INPUT or FORWARD")
    if params.get("out_interface") is not None and chain == "INPUT":
        raise ArptablesInputError("out_interface: arptables has no output interface in chain INPUT; use it with chain OUTPUT or FORWARD")
    normalisers = {
        "source": normalise_network,
        "destination": normalise_network,
        "in_interface": check_interface_name,
        "out_interface": check_interface_name,
        "mangle_ip_source": normalise_address,
        "mangle_ip_destination": normalise_address,
        "mangle_mac_source": normalise_mac,
        "mangle_mac_destination": normalise_mac,
    }
    rule = {"chain": chain, "jump": jump}
    for option, normalise in normalisers.items():
        value = params.get(option)
        rule[option] = None if value is None else normalise(value, option)
    rule["extra"] = []
    return {field: rule[field] for field in RULE_FIELDS}


def check_interfaces_exist(rule, existing):
    """arptables takes any name; a typo would silently match nothing, so the interface must exist."""
    for option in ("in_interface", "out_interface"):
        name = rule[option]
        if name is not None and name not in existing:
            raise ArptablesInputError(f"{option}: there is no interface '{name}' on this host; it has {', '.join(sorted(existing)) or 'none'}")


def list_interfaces():
    return os.listdir(SYS_CLASS_NET)


# --- save output --------------------------------------------------------------------------


def save_from_legacy_listing(listing):
    """What arptables-legacy-save prints, from `arptables-legacy -t filter -L -n`.

    That script lists with /usr/sbin/arptables, whichever backend the alternative points at,
    so it is not run; this is its logic.
    """
    chains, custom_chains, rules = [], [], []
    chain = None
    for line in listing.splitlines():
        builtin = re.search(r"Chain\s(.*?)\s\(policy\s(.*?)\)", line)
        custom = re.search(r"Chain\s(.*?)\s\(", line)
        if builtin:
            chain = builtin.group(1)
            chains.append(f":{chain} {builtin.group(2)}\n")
        elif custom:
            chain = custom.group(1)
            custom_chains.append(f":{chain} -\n")
        elif line:
            rules.append(f"-A {chain} {line}\n")
    return "".join(["*filter\n", *chains, *custom_chains, *rules, "\n"])


def without_comments(save):
    return "".join(line for line in save.splitlines(keepends=True) if not line.startswith("#"))


def declared_chains(save, backend):
    chains = [line[1:].split()[0] for line in save.splitlines() if line.startswith(":") and line[1:].strip()]
    return chains or list(DEFAULT_CHAINS[backend])


def get_chain_lines(save, chain):
    """The chain's rule lines, in order, without legacy's trailing space."""
    return [line.rstrip() for line in save.splitlines() if line.split()[:2] == ["-A", chain]]


def parse_rule(line):
    """One save line (-A CHAIN ...) as a normalised rule dict."""
    tokens = line.split()
    rule = dict.fromkeys(RULE_FIELDS)
    rule["chain"] = tokens[1]
    extra = []
    rest = tokens[2:]
    index = 0
    while index < len(rest):
        token = rest[index]
        field = FIELD_OF_FLAG.get(token)
        if token == "!" or (field and rest[index + 1 : index + 2] == ["!"]):
            # A negated match (! -d X, or the older -d ! X) is not the plain match this module writes.
            extra += rest[index : index + 3]
            index += 3
        elif field and index + 1 < len(rest) and rule[field] is None:
            rule[field] = rest[index + 1]
            index += 2
        else:
            extra.append(token)
            index += 1
    if rule["mangle_mac_source"] or rule["mangle_mac_destination"]:
        for index in range(len(extra) - 1):
            if extra[index : index + 2] == HLEN_ARGS:
                del extra[index : index + 2]
                break
    rule["extra"] = extra
    for field in ("source", "destination"):
        if rule[field] is not None:
            rule[field] = _lenient(normalise_network, rule[field])
    for field in ("mangle_mac_source", "mangle_mac_destination"):
        if rule[field] is not None:
            rule[field] = rule[field].lower()
    return rule


def _lenient(normalise, value):
    """Save output may hold what this module never writes (a non-contiguous mask): keep it as printed."""
    try:
        return normalise(value, "")
    except ArptablesInputError:
        return value


# --- diff ---------------------------------------------------------------------------------


def build_rule_args(rule, backend):
    """The rule specification after -A/-I/-D CHAIN, in the order the backends print it."""
    args = []
    for flag, field in MATCH_FLAGS:
        if rule[field] is not None:
            args += [flag, rule[field]]
    if backend == "legacy" and (rule["mangle_mac_source"] or rule["mangle_mac_destination"]):
        args += HLEN_ARGS
    for flag, field in MANGLE_FLAGS:
        if rule[field] is not None:
            args += [flag, rule[field]]
    return args + list(rule["extra"])


def render_line(rule, backend):
    return " ".join(["-A", rule["chain"], *build_rule_args(rule, backend)])


def same_rule(one, other):
    return all(one[field] == other[field] for field in RULE_FIELDS)


def diff_rules(wanted, lines, chains, state, action, rule_num, backend):
    """The arptables calls (argument lists without the binary) that bring the chain whose
    save LINES are given to STATE, and the chain's lines after them."""
    chain = wanted["chain"]
    if rule_num is not None and action != "insert":
        raise ArptablesInputError(f"rule_num: only used with action=insert, and action is {action}")
    args = build_rule_args(wanted, backend)
    matches = [index for index, line in enumerate(lines) if same_rule(parse_rule(line), wanted)]
    if state == "absent":
        # -D removes the first match only, so once per copy.
        return [["-D", chain, *args] for _match in matches], [line for index, line in enumerate(lines) if index not in matches]
    if matches:
        return [], list(lines)
    if chain not in chains:
        raise ArptablesInputError(
            f"chain: {chain} does not exist in the {backend} backend's filter table, which has {', '.join(chains)}"
            + ("; nftables' arp family has no FORWARD hook, use backend=legacy" if backend == "nft" and chain == "FORWARD" else "")
        )
    new = render_line(wanted, backend)
    if action == "append":
        return [["-A", chain, *args]], [*lines, new]
    position = 1 if rule_num is None else rule_num
    if not 1 <= position <= len(lines) + 1:
        raise ArptablesInputError(f"rule_num: {position} is out of range; chain {chain} has {len(lines)} rules, so use 1 to {len(lines) + 1}")
    return [["-I", chain, str(position), *args]], [*lines[: position - 1], new, *lines[position - 1 :]]


# --- backends -----------------------------------------------------------------------------


def backend_from_path(path):
    """The backend an arptables binary's resolved path names, or None when the name says nothing."""
    name = os.path.basename(path)
    if "nft" in name:
        return "nft"
    if "legacy" in name:
        return "legacy"
    return None


def backend_from_version(text):
    """`arptables -V`: nft prints "arptables v1.8.9 (nf_tables)", legacy "arptables v0.0.5"."""
    if "nf_tables" in text:
        return "nft"
    if re.search(r"arptables v0\.", text):
        return "legacy"
    return None


def choose_backend(default, can_list):
    """backend=auto: the default backend if it can list the rule set, else the other one if
    that can; (backend, warning). Neither: the default, whose error then says why."""
    order = [default, OTHER_BACKEND[default]] if default else ["nft", "legacy"]
    for name in order:
        if can_list(name):
            if default and name != default:
                return name, (
                    f"arptables points at the {default} backend, which cannot list the rule set on this host "
                    f"(e.g. a kernel without nftables' arp family); used the {name} backend instead"
                )
            return name, None
    return order[0], None


class Backend:
    """One arptables backend's binaries: read its rule set, run changes."""

    def __init__(self, module, name, binary, save_binary=None):
        self.module = module
        self.name = name
        self.binary = binary
        self.save_binary = save_binary

    @property
    def list_command(self):
        if self.name == "legacy":
            return [self.binary, "-t", "filter", "-L", "-n"]
        return [self.save_binary]

    def read(self):
        """(rc, save text, stderr), never failing the module."""
        rc, out, err = self.module.run_command(self.list_command, expand_user_and_vars=False)
        if self.name == "legacy" and rc == 0:
            out = save_from_legacy_listing(out)
        # nft stamps its save output with the time; a copy of it (the role's rules file) must
        # only change with the rules. Restore skips comments.
        return rc, without_comments(out), err

    def can_list(self):
        rc, out, _err = self.read()
        if rc != 0:
            return False
        if self.name == "legacy" or "*filter" in out:
            return True
        # nft lists nothing both in a fresh namespace and on a kernel without nftables' arp family
        # (the UML lab's): adding a rule in a throwaway network namespace tells them apart.
        unshare = self.module.get_bin_path("unshare")
        if not unshare or self.module.run_command([unshare, "--net", "--", "true"], expand_user_and_vars=False)[0] != 0:
            return True
        return self.module.run_command([unshare, "--net", "--", self.binary, "-A", "INPUT", "-j", "ACCEPT"], expand_user_and_vars=False)[0] == 0

    def get_existing_rules(self):
        """The full save text."""
        rc, out, err = self.read()
        if rc != 0:
            self.module.fail_json(msg=f"{' '.join(self.list_command)} failed (rc {rc}): {(err or out).strip()}", backend=self.name, binary=self.binary)
        return out

    def apply_changes(self, commands):
        for args in commands:
            # run_command would expand ~ and $VARS in each argument: an interface may be named ~x or $x.
            self.module.run_command([self.binary, *args], check_rc=True, expand_user_and_vars=False)


def locate_backend(module, name):
    """The Backend NAME if its binaries are installed, else None."""
    binary = module.get_bin_path(BINARIES[name])
    save_binary = module.get_bin_path(NFT_SAVE_BINARY) if name == "nft" else binary
    return Backend(module, name, binary, save_binary) if binary and save_binary else None


def require_backend(module, name):
    backend = locate_backend(module, name)
    if backend is None:
        missing = BINARIES[name] if name == "legacy" else f"{BINARIES[name]} or {NFT_SAVE_BINARY}"
        module.fail_json(msg=f"the {name} arptables backend is not installed ({missing} not found): install the package {PACKAGES[name]}")
    return backend


def detect_default_backend(module):
    """The backend `arptables` (an alternative on Debian) points at, or None without one."""
    path = module.get_bin_path("arptables")
    if path is None:
        return None
    name = backend_from_path(os.path.realpath(path))
    if name is None:
        rc, out, err = module.run_command([path, "-V"], expand_user_and_vars=False)
        name = backend_from_version(out + err)
    return name


def select_backend(module, requested):
    """(Backend, warnings) for backend=REQUESTED."""
    if requested != "auto":
        return require_backend(module, requested), []
    located = {name: locate_backend(module, name) for name in BACKENDS}
    if not any(located.values()):
        module.fail_json(
            msg="no arptables backend is installed (neither arptables-nft with arptables-nft-save nor arptables-legacy found): "
            f"install the package {PACKAGES['nft']} for the nft backend, or {PACKAGES['legacy']} for the legacy one"
        )
    name, warning = choose_backend(detect_default_backend(module), lambda name: located[name] is not None and located[name].can_list())
    return located[name] or require_backend(module, name), [warning] if warning else []


# --- the module ---------------------------------------------------------------------------


def _lines_text(lines):
    return "".join(f"{line}\n" for line in lines)


def manage_rule(module):
    """Run arptables_rule; its result dict."""
    params = module.params
    try:
        wanted = build_wanted_rule(params)
        if params["state"] == "present":
            check_interfaces_exist(wanted, list_interfaces())
    except ArptablesInputError as exc:
        module.fail_json(msg=str(exc))

    backend, warnings = select_backend(module, params["backend"])
    for warning in warnings:
        module.warn(warning)
    save = backend.get_existing_rules()
    before = get_chain_lines(save, wanted["chain"])
    try:
        commands, after = diff_rules(wanted, before, declared_chains(save, backend.name), params["state"], params["action"], params["rule_num"], backend.name)
    except ArptablesInputError as exc:
        module.fail_json(msg=str(exc), backend=backend.name, binary=backend.binary)

    if commands and not module.check_mode:
        backend.apply_changes(commands)
        save = backend.get_existing_rules()
        after = get_chain_lines(save, wanted["chain"])

    result = {
        "changed": bool(commands),
        "rule": wanted,
        "backend": backend.name,
        "binary": backend.binary,
        "commands": [[backend.binary, *args] for args in commands],
        "rules": [parse_rule(line) for line in after],
        "save": save,
    }
    if module._diff:
        result["diff"] = {"before": _lines_text(before), "after": _lines_text(after)}
    return result
