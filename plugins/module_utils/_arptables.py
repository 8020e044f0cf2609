# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""arptables rules as plain dicts: build the wanted rule from module parameters, parse the
backend's save output into the same shape, and diff them. The backends are in _arptables_backend.

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
import json
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
# How diff_rules deletes an nft rule, by its handle: run with nft, not arptables-nft.
NFT_DELETE = ("delete", "rule", "arp", "filter")
# legacy refuses to mangle a MAC address without it and prints it back; nft implies it and never prints it.
HLEN_ARGS = ["--h-length", "6"]

# The chains of a filter table that does not exist yet: nftables' arp family has no forward hook.
DEFAULT_CHAINS = {"legacy": ("INPUT", "OUTPUT", "FORWARD"), "nft": ("INPUT", "OUTPUT")}

# arptables-nft always matches the ARP header's hardware type and address lengths (nft lists
# them), but its save output shows them only when they are not Ethernet's and IPv4's.
NFT_IMPLICIT = {"htype": 1, "hlen": 6, "plen": 4}
# The save option that shows each match nft lists, by nft's meta key or arp payload field.
NFT_MATCH_FLAGS = {
    "iifname": "-i",
    "oifname": "-o",
    "saddr ip": "-s",
    "daddr ip": "-d",
    "saddr ether": "--src-mac",
    "daddr ether": "--dst-mac",
    "operation": "--opcode",
    "htype": "--h-type",
    "hlen": "--h-length",
    "ptype": "--proto-type",
}
SAVE_MATCH_FLAGS = frozenset(NFT_MATCH_FLAGS.values())
# nft expressions that match nothing: counters, verdicts, arptables' targets (an xt target).
NFT_NON_MATCHES = frozenset(("counter", "accept", "drop", "return", "jump", "goto", "continue"))

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


# --- what the nft save output leaves out ---------------------------------------------------


def _nft_match_flag(match):
    """The save option that shows an nft match, "" for an implicit one, None for one it cannot show."""
    left = match["left"]
    if isinstance(left, dict) and "&" in left:  # a masked match: {"&": [payload, mask]}
        left = left["&"][0]
    if not isinstance(left, dict):
        return None
    key = left.get("meta", {}).get("key") or left.get("payload", {}).get("field")
    if match["op"] == "==" and key in NFT_IMPLICIT and NFT_IMPLICIT[key] == match["right"]:
        return ""
    return NFT_MATCH_FLAGS.get(key)


def reads_whole(expressions, line):
    """Whether the save LINE shows every match of the nft rule made of EXPRESSIONS."""
    shown, tokens = [], line.split()
    for index, token in enumerate(tokens):
        if token in SAVE_MATCH_FLAGS and (index == 0 or tokens[index - 1] not in SAVE_MATCH_FLAGS):
            shown.append(token)
    listed = []
    for expression in expressions:
        ((kind, value),) = expression.items()
        if kind == "match":
            listed.append(_nft_match_flag(value))
        elif kind not in NFT_NON_MATCHES and not (kind == "xt" and value.get("type") == "target"):
            return False
    return None not in listed and sorted(flag for flag in listed if flag) == sorted(shown)


def nft_rule_handles(listing, save, chain):
    """For each rule of CHAIN, in order: its handle in `nft -j list table arp filter` LISTING, or
    None where its SAVE line leaves out a match (arptables-nft 1.8.9 prints no masked MAC address),
    so that it can neither be taken for a rule the module wants nor be deleted as one.
    ValueError when the two disagree on the chain's length."""
    rules = [item["rule"] for item in json.loads(listing)["nftables"] if "rule" in item and item["rule"]["chain"] == chain]
    lines = get_chain_lines(save, chain)
    if len(rules) != len(lines):
        raise ValueError(f"chain {chain} has {len(rules)} rules in nft's listing and {len(lines)} in arptables-nft-save's")
    return [rule["handle"] if reads_whole(rule["expr"], lines[index]) else None for index, rule in enumerate(rules)]


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


def diff_rules(wanted, lines, chains, state, action, rule_num, backend, handles=None):
    """The calls (argument lists without the binary) that bring the chain whose save LINES are
    given to STATE, and the chain's lines after them.

    HANDLES (nft) holds each rule's nft handle, None for a rule its line does not show whole: such
    a rule never matches. nft deletes by handle ("delete rule ..." for nft), since arptables-nft -D
    would take the first rule whose shown part matches; legacy shows every rule whole."""
    chain = wanted["chain"]
    if rule_num is not None and action != "insert":
        raise ArptablesInputError(f"rule_num: only used with action=insert, and action is {action}")
    args = build_rule_args(wanted, backend)
    readable = [True] * len(lines) if handles is None else [handle is not None for handle in handles]
    matches = [index for index, line in enumerate(lines) if readable[index] and same_rule(parse_rule(line), wanted)]
    if state == "absent":
        after = [line for index, line in enumerate(lines) if index not in matches]
        if handles is None:
            # -D removes the first match only, so once per copy.
            return [["-D", chain, *args] for _match in matches], after
        return [[*NFT_DELETE, chain, "handle", str(handles[index])] for index in matches], after
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
