# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""ipvs_sync_daemon's run: read the running connection-sync daemon of one mode, compare it with
the wanted one (_ipvs_spec.want_daemon), and start, restart or stop it over netlink.

PRIVATE to the collection: not a public API, it may change without notice.

The kernel has no SET for a daemon (IPVS_CMD_NEW_DAEMON, IPVS_CMD_DEL_DAEMON only): a daemon
whose settings differ is stopped and started again. If the kernel refuses the new one, the old
one is started again, so a refused change leaves the kernel as it was.
"""

from __future__ import annotations

import errno
import os

from ansible_collections.lvs.dr.plugins.module_utils._ipvs_kernel import interface_mtu, sync_options_supported
from ansible_collections.lvs.dr.plugins.module_utils._ipvs_plan import RACE_ROUNDS, open_table
from ansible_collections.lvs.dr.plugins.module_utils._ipvs_spec import (
    SYNC_SINCE_4_3,
    IPVSInputError,
    check_interface_name,
    describe_service,
    diff_daemon,
    family_of,
    plan_daemon,
    want_daemon,
)

# Each action as the writes that do it: (netlink action, which daemon) in order.
WRITES = {"start": [("add", "want")], "restart": [("delete", "before"), ("add", "want")], "stop": [("delete", "before")]}


def describe(daemon):
    """A daemon as ipvsadm -L --daemon names it: master sync daemon (mcast=eth1, syncid=10)."""
    return f"{daemon['mode']} sync daemon (mcast={daemon['interface']}, syncid={daemon['syncid']})"


def want_from(params):
    """The wanted daemon for ipvs_sync_daemon's PARAMS; IPVSInputError names the option and the
    fix. Reads the interface (it must exist here, and a backup's default sync_maxlen is its MTU)
    but changes nothing."""
    if params["state"] != "present":
        return want_daemon(params)
    name = check_interface_name(params["interface"])
    given = [k for k in SYNC_SINCE_4_3 if params.get(k) is not None]
    if given and not sync_options_supported():
        raise IPVSInputError(
            f"{', '.join(given)}: this kernel ({os.uname().release}) is older than Linux 4.3 and would ignore them; "
            "leave them out (the kernel's defaults apply), or use a newer kernel"
        )
    try:
        mtu = interface_mtu(name)
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            raise IPVSInputError(no_interface(name)) from None
        raise IPVSInputError(f"interface: reading {name} failed: {exc.strerror} (errno {exc.errno})") from None
    return want_daemon(params, mtu)


def no_interface(name):
    return (
        f"interface: there is no interface {name} in this network namespace (ip link show lists them); give the interface "
        "the sync messages go out on (master) or come in on (backup)"
    )


def explain_daemon_error(code, action, daemon):
    """Why the kernel refused to start ("add") or stop ("delete") DAEMON, and the fix."""
    verb = "start" if action == "add" else "stop"
    if code == errno.ENODEV:
        return no_interface(daemon["interface"]) + " (the kernel answered ENODEV)"
    if code in (errno.EPERM, errno.EACCES):
        return (
            f"the kernel refused to {verb} the {daemon['mode']} sync daemon: {os.strerror(code)}; IPVS needs CAP_NET_ADMIN: run the task as root (become: true)"
        )
    if code == errno.EINVAL and action == "add":
        return (
            f"the kernel refused to start the {daemon['mode']} sync daemon (errno {code}, {os.strerror(code)}): its sync protocol "
            "cannot carry real servers of another address family than their service's (tunnel real servers mixing IPv4 and "
            "IPv6): remove those, or do without the sync daemon"
        )
    if code == errno.EADDRINUSE and action == "add":
        return (
            f"the kernel could not open the {daemon['mode']} sync daemon's socket (errno {code}, {os.strerror(code)}): something in this "
            f"network namespace holds UDP port {daemon['mcast_port']}; give mcast_port another port, or stop what holds it"
        )
    if code == errno.EEXIST:
        return f"a {daemon['mode']} sync daemon was started by someone else during this run; run again"
    return f"the kernel refused to {verb} the {daemon['mode']} sync daemon: {os.strerror(code)} (errno {code})"


def lost_race(action, code):
    """A write refused because another run did the same meanwhile: started a daemon of that mode
    (EEXIST), or stopped it (ESRCH)."""
    return (action, code) in (("add", errno.EEXIST), ("delete", errno.ESRCH))


def check_startable(module, table):
    """Fail before any write where the kernel would refuse any daemon (EINVAL): while a real
    server's address family differs from its service's, which the sync protocol cannot carry."""
    mixed = [
        f"{describe_service(key)} -> {real['address']}"
        for key, (service, reals) in table.read().items()
        for real in reals.values()
        if family_of(real["address"]) != service["family"]
    ]
    if mixed:
        module.fail_json(
            msg=f"the kernel starts no sync daemon while a real server's address family differs from its service's (the sync "
            f"protocol cannot carry them): {', '.join(mixed)}; remove those tunnel real servers, or do without the sync daemon"
        )


def find(daemons, mode):
    return next((d for d in daemons if d["mode"] == mode), None)


def apply_action(module, table, action, before, want):
    """Carry out ACTION; a lost race returns False (read again and plan anew), any other refusal
    fails the task. A restart whose new daemon the kernel refuses starts BEFORE again."""
    daemons = {"before": before, "want": want}
    stopped = False
    for kind, which in WRITES[action]:
        code = table.write_daemon(kind, daemons[which])
        if code and lost_race(kind, code):
            return False
        if code:
            msg, still_stopped = f"{describe(daemons[which])}: {explain_daemon_error(code, kind, daemons[which])}", False
            if stopped:
                back = table.write_daemon("add", before)
                still_stopped = bool(back)
                msg += (
                    f"; the running daemon had been stopped to apply the change, and starting it again failed too ({os.strerror(back)}): it is stopped"
                    if back
                    else "; the running daemon had been stopped to apply the change and was started again with its old settings"
                )
            module.fail_json(msg=msg, errno=code, changed=still_stopped)
        stopped = stopped or kind == "delete"
    return True


def run_sync_daemon(module):
    """The result of ipvs_sync_daemon for MODULE's parameters."""
    params, mode = module.params, module.params["mode"]
    try:
        want = want_from(params)
    except IPVSInputError as exc:
        module.fail_json(msg=str(exc))
    with open_table(module) as table:
        before = action = None
        for _round in range(RACE_ROUNDS + 1):
            before = find(table.daemons(), mode)
            action = plan_daemon(before, want, params["state"])
            if action in ("start", "restart"):
                check_startable(module, table)
            if not action or module.check_mode or apply_action(module, table, action, before, want):
                break
        else:
            module.fail_json(msg=f"the {mode} sync daemon kept being started or stopped by someone else during this run; run again")
        after = before
        if action:
            after = (None if action == "stop" else want) if module.check_mode else find(table.daemons(), mode)
    result = {
        "changed": bool(action),
        "action": action or "none",
        "changed_fields": changed_fields(before, after, action),
        "before": before or {},
        "after": after or {},
    }
    if module._diff:
        result["diff"] = {"before": before or {}, "after": after or {}, "before_header": f"{mode} sync daemon", "after_header": after_header(mode, action)}
    return result


def changed_fields(before, after, action):
    if action == "restart":
        return diff_daemon(before, after)
    return sorted(set(before or {}) | set(after or {})) if action else []


def after_header(mode, action):
    if action == "restart":
        return f"{mode} sync daemon (stopped and started again: the kernel cannot change a running daemon)"
    return f"{mode} sync daemon" + {"start": " (started)", "stop": " (stopped)"}.get(action, "")
