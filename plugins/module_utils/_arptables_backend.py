# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""arptables backends: find and choose one, read its rule set, run changes; and the module's run.

PRIVATE to the collection: not a public API, it may change without notice.

The rules themselves (parsing, normalising, diffing) are in _arptables.
"""

from __future__ import annotations

import os
import re

from ansible_collections.lvs.dr.plugins.module_utils._arptables import (
    BACKENDS,
    NFT_DELETE,
    ArptablesInputError,
    build_wanted_rule,
    check_interfaces_exist,
    declared_chains,
    diff_rules,
    get_chain_lines,
    list_interfaces,
    nft_rule_handles,
    parse_rule,
    save_from_legacy_listing,
    without_comments,
)

BINARIES = {"legacy": "arptables-legacy", "nft": "arptables-nft"}
NFT_SAVE_BINARY = "arptables-nft-save"
# EL 8 installs the nft tools under these plain names alone (no arptables-nft).
PLAIN_BINARY, PLAIN_NFT_SAVE_BINARY = "arptables", "arptables-save"
PACKAGES = {"legacy": "arptables (Debian, Ubuntu, RHEL)", "nft": "iptables (Debian, Ubuntu) or iptables-nft (RHEL)"}
OTHER_BACKEND = {"legacy": "nft", "nft": "legacy"}


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

    def fail(self, msg):
        self.module.fail_json(msg=msg, backend=self.name, binary=self.binary)

    def get_existing_rules(self, chain):
        """The full save text, and diff_rules' handles of CHAIN's rules (None for legacy)."""
        rc, out, err = self.read()
        if rc != 0:
            self.fail(f"{' '.join(self.list_command)} failed (rc {rc}): {(err or out).strip()}")
        if self.name == "legacy" or not get_chain_lines(out, chain):
            return out, None if self.name == "legacy" else []
        # arptables-nft-save leaves some matches out (a masked MAC address): nft lists them all.
        nft = self.module.get_bin_path("nft")
        if nft is None:
            self.fail("the nft arptables backend needs nft to read each rule whole (arptables-nft-save leaves some matches out): install the package nftables")
        command = [nft, "-j", "list", "table", "arp", "filter"]
        rc, listing, err = self.module.run_command(command, expand_user_and_vars=False)
        if rc != 0:
            self.fail(f"{' '.join(command)} failed (rc {rc}): {(err or listing).strip()}")
        try:
            return out, nft_rule_handles(listing, out, chain)
        except ValueError as exc:
            self.fail(f"the rule set changed while it was read ({exc}); run again")

    def argv(self, args):
        """The full command for diff_rules' ARGS: nft deletes a rule by its handle."""
        return [self.module.get_bin_path("nft", required=True), *args] if args[0] == NFT_DELETE[0] else [self.binary, *args]

    def apply_changes(self, commands):
        for argv in commands:
            # run_command would expand ~ and $VARS in each argument: an interface may be named ~x or $x.
            self.module.run_command(argv, check_rc=True, expand_user_and_vars=False)


def locate_backend(module, name, plain):
    """The Backend NAME if its binaries are installed, else None. PLAIN: the backend the plain
    `arptables` is (detect_default_backend), whose binaries stand in for NAME's when NAME is it."""
    binary = module.get_bin_path(BINARIES[name])
    save_binary = module.get_bin_path(NFT_SAVE_BINARY) if name == "nft" else binary
    if not (binary and save_binary) and name == plain:
        binary = module.get_bin_path(PLAIN_BINARY)
        save_binary = module.get_bin_path(PLAIN_NFT_SAVE_BINARY) if name == "nft" else binary
    return Backend(module, name, binary, save_binary) if binary and save_binary else None


def require_backend(module, name, plain=None):
    backend = locate_backend(module, name, plain)
    if backend is None:
        missing = BINARIES[name] if name == "legacy" else f"{BINARIES[name]} or {NFT_SAVE_BINARY}"
        module.fail_json(msg=f"the {name} arptables backend is not installed ({missing} not found): install the package {PACKAGES[name]}")
    return backend


def detect_default_backend(module):
    """The backend `arptables` is (on Debian an alternative pointing at arptables-nft or -legacy;
    on EL 8 the nft tool itself, named so), or None without one."""
    path = module.get_bin_path(PLAIN_BINARY)
    if path is None:
        return None
    name = backend_from_path(os.path.realpath(path))
    if name is None:
        rc, out, err = module.run_command([path, "-V"], expand_user_and_vars=False)
        name = backend_from_version(out + err)
    return name


def select_backend(module, requested):
    """(Backend, warnings) for backend=REQUESTED."""
    default = detect_default_backend(module)
    if requested != "auto":
        return require_backend(module, requested, default), []
    located = {name: locate_backend(module, name, default) for name in BACKENDS}
    if not any(located.values()):
        module.fail_json(
            msg="no arptables backend is installed (neither arptables-nft with arptables-nft-save nor arptables-legacy found): "
            f"install the package {PACKAGES['nft']} for the nft backend, or {PACKAGES['legacy']} for the legacy one"
        )
    name, warning = choose_backend(default, lambda name: located[name] is not None and located[name].can_list())
    return located[name] or require_backend(module, name, default), [warning] if warning else []


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
    save, handles = backend.get_existing_rules(wanted["chain"])
    before = get_chain_lines(save, wanted["chain"])
    try:
        chains = declared_chains(save, backend.name)
        plan, after = diff_rules(wanted, before, chains, params["state"], params["action"], params["rule_num"], backend.name, handles)
    except ArptablesInputError as exc:
        backend.fail(str(exc))
    commands = [backend.argv(args) for args in plan]

    if commands and not module.check_mode:
        backend.apply_changes(commands)
        save = backend.get_existing_rules(wanted["chain"])[0]
        after = get_chain_lines(save, wanted["chain"])

    result = {
        "changed": bool(commands),
        "rule": wanted,
        "backend": backend.name,
        "binary": backend.binary,
        "commands": commands,
        "rules": [parse_rule(line) for line in after],
        "save": save,
    }
    if module._diff:
        result["diff"] = {"before": _lines_text(before), "after": _lines_text(after)}
    return result
