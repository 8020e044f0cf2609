"""The fork server ("zygote") behind run_module (conftest.py), started as `python module_runner.py FD`
(FD: a listening unix socket). It imports the heavy third-party libraries once, never this collection.
Per connection: a JSON line {"module", "argsfile", "netns", "cwd", "stdout", "stderr"}; it forks a child
that does what `[ip netns exec NETNS] python MODULE ARGSFILE` would (the collection is imported afresh
there), reaps it and answers {"rc": its exit code}. It exits at EOF on its stdin, a pipe from pytest.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import importlib
import json
import os
import runpy
import selectors
import socket
import sys

# What the modules import besides this collection and the standard library: read-only, shared.
PRELOAD = [
    "ansible.module_utils.basic",
    "ansible.module_utils.compat.version",
    "ansible.module_utils._internal._json._profiles._module_legacy_c2m",
    "ansible.module_utils._internal._json._profiles._module_legacy_m2c",
    "pyroute2",
]

# <sched.h>, <sys/mount.h>: for netns_switch() of iproute2's lib/namespace.c, which ip netns exec runs.
CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_RDONLY, MS_BIND, MS_REC, MS_SLAVE, MNT_DETACH = 1, 4096, 16384, 1 << 19, 2
libc = ctypes.CDLL(None, use_errno=True)


def check(ret: int, what: str) -> None:
    if ret < 0:
        raise OSError(ctypes.get_errno(), f"{what} failed: {os.strerror(ctypes.get_errno())}")


def enter_netns(name: str) -> None:
    """What `ip netns exec NAME` does before it runs its command."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    check(libc.setns(fd, CLONE_NEWNET), f'setting the network namespace "{name}"')
    os.close(fd)
    # A mount namespace whose mounts do not propagate back, with a /sys of this network namespace.
    check(libc.unshare(CLONE_NEWNS), "unshare")
    check(libc.mount(b"", b"/", b"none", MS_REC | MS_SLAVE, None), '"mount --make-rslave /"')
    flags = 0
    if libc.umount2(b"/sys", MNT_DETACH) < 0 and os.path.exists("/sys"):  # then overlay it, read-only if it is
        flags = MS_RDONLY if os.statvfs("/sys").f_flag & os.ST_RDONLY else 0
    check(libc.mount(name.encode(), b"/sys", b"sysfs", flags, None), "mount of /sys")
    etc = f"/etc/netns/{name}"  # its files bound over those of /etc
    for entry in sorted(os.listdir(etc)) if os.path.isdir(etc) else []:
        if libc.mount(f"{etc}/{entry}".encode(), f"/etc/{entry}".encode(), b"none", MS_BIND, None) < 0:
            print(f"Bind {etc}/{entry} -> /etc/{entry} failed: {os.strerror(ctypes.get_errno())}", file=sys.stderr)


def run_script(path: str, argsfile: str) -> int:
    """Run PATH as `python PATH ARGSFILE` would, in this process; its exit code."""
    sys.argv = [path, argsfile]
    sys.path[0] = os.path.dirname(path)  # python puts the script's directory first
    importlib.invalidate_caches()
    try:
        runpy.run_path(path, run_name="__main__")
        code = 0
    except SystemExit as exc:  # sys.exit(None | int | anything else), as the interpreter takes it
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    except BaseException as exc:  # uncaught: its traceback from the script's own frame on
        tb = exc.__traceback__
        while tb and tb.tb_frame.f_code.co_filename != path:
            tb = tb.tb_next
        exc.__traceback__ = tb or exc.__traceback__
        sys.excepthook(type(exc), exc, exc.__traceback__)
        code = 1
    atexit._run_exitfuncs()  # as the interpreter does on exit (e.g. AnsibleModule's temporary directory)
    return code & 0xFF


def child(request: dict) -> None:
    """The forked child: become the module's process, run it, exit. Never returns."""
    code = 255  # what ip netns exec exits with when it cannot enter the namespace
    try:
        gc.enable()
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        for fd, name in ((1, "stdout"), (2, "stderr")):
            os.dup2(os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # a new process has only 0, 1 and 2 open
        if request["netns"]:
            enter_netns(request["netns"])
        os.chdir(request["cwd"])
        code = run_script(request["module"], request["argsfile"])
    except BaseException as exc:
        print(f"module_runner: {exc!r}", file=sys.stderr)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(code)


def serve(listener: socket.socket) -> None:
    gc.disable()
    for name in PRELOAD:
        with contextlib.suppress(ImportError):  # then the module's own import fails in the child, as it would
            importlib.import_module(name)
    gc.freeze()  # children's collections then skip these objects and leave their pages shared
    assert not [m for m in sys.modules if m.startswith("ansible_collections")], "the zygote must not import the collection"
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(0, selectors.EVENT_READ)
    while True:
        for key, _events in selector.select():
            if key.fd == 0:  # pytest is done
                if not os.read(0, 4096):
                    return
            elif key.fileobj is listener:  # a request: fork its child, then watch the child's pidfd
                conn, _address = listener.accept()
                request = json.loads(conn.makefile("rb").readline())
                pid = os.fork()
                if pid == 0:
                    child(request)
                selector.register(os.pidfd_open(pid), selectors.EVENT_READ, (pid, conn))
            else:  # a child has exited: reap it, answer its exit code
                pid, conn = key.data
                selector.unregister(key.fd)
                os.close(key.fd)
                rc = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
                with contextlib.suppress(OSError):  # unless pytest no longer waits for it
                    conn.sendall(json.dumps({"rc": rc}).encode() + b"\n")
                conn.close()


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
