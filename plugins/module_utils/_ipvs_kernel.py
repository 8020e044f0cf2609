# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The kernel's IPVS table of this network namespace: dump it and write to it.

PRIVATE to the collection: not a public API, it may change without notice.

No Ansible here: what cannot be opened raises IPVSUnavailable (with the fix in its message),
what the kernel refuses raises _ipvs_netlink.NetlinkError or comes back as an errno per write.
_ipvs_plan turns both into task failures.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import sys
import traceback

from ansible.module_utils.compat.version import LooseVersion

from ansible_collections.lvs.dr.plugins.module_utils import _ipvs_netlink as nl
from ansible_collections.lvs.dr.plugins.module_utils._ipvs_spec import real_key, service_key

PYROUTE2_MIN = "0.9.5"
try:
    import pyroute2

    PYROUTE2_IMP_ERR = None
except ImportError:
    pyroute2 = None
    PYROUTE2_IMP_ERR = traceback.format_exc()
try:
    from pyroute2 import IPVS
except ImportError:  # a pyroute2 from before its IPVS API (Debian 12's 0.7.2): the error names its version
    IPVS = None
    if pyroute2 is not None:
        PYROUTE2_IMP_ERR = traceback.format_exc()


class IPVSUnavailable(Exception):
    """No way to the kernel's IPVS table here: pyroute2 missing or too old, or no IPVS in the
    kernel. MISSING_LIB names the library for Ansible's missing_required_lib, EXCEPTION the
    import's traceback."""

    def __init__(self, msg, missing_lib=None, exception=None):
        super().__init__(msg)
        self.missing_lib, self.exception = missing_lib, exception


def check_pyroute2():
    """Raise IPVSUnavailable unless a pyroute2 with a usable IPVS API can be imported."""
    if pyroute2 is None:
        raise IPVSUnavailable("pyroute2 is missing", missing_lib=f"pyroute2>={PYROUTE2_MIN}", exception=PYROUTE2_IMP_ERR)
    version = getattr(pyroute2, "__version__", "0")
    if LooseVersion(version) < LooseVersion(PYROUTE2_MIN) or IPVS is None:
        raise IPVSUnavailable(
            f"pyroute2 {version} is too old: its IPVS API needs pyroute2>={PYROUTE2_MIN} (Debian 12 ships 0.7.2); "
            f"upgrade the one in {os.path.dirname(pyroute2.__file__ or '?')} for the Python that runs this module: "
            f"{sys.executable} -m pip install 'pyroute2>={PYROUTE2_MIN}'",
            exception=PYROUTE2_IMP_ERR,
        )


def tunnel_types_supported():
    """Whether this kernel knows the GUE and GRE tunnel types and their checksums (IPVS_DEST_ATTR_
    TUN_*: GUE came in Linux 5.2, GRE and the checksums in 5.3). Older kernels ignore the
    attributes and make the real server ipip."""
    release = os.uname().release.split("-", 1)[0]
    return LooseVersion(release) >= LooseVersion("5.3")


def sync_options_supported():
    """Whether this kernel takes and reports a sync daemon's sync_maxlen, multicast group, port and
    TTL (Linux 4.3); older kernels ignore them and use their defaults."""
    release = os.uname().release.split("-", 1)[0]
    return LooseVersion(release) >= LooseVersion("4.3")


SIOCGIFMTU = 0x8921


def interface_mtu(name):
    """The MTU of the interface NAME of this network namespace; OSError (ENODEV) when there is none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        # struct ifreq: the name, then a union of 24 bytes whose first int is the MTU
        ifreq = fcntl.ioctl(sock.fileno(), SIOCGIFMTU, struct.pack("=16si20x", name.encode(), 0))
    return struct.unpack_from("=i", ifreq, 16)[0]


class IPVSTable:
    """The kernel's IPVS table of this network namespace, over generic netlink."""

    def __init__(self):
        check_pyroute2()
        self.writes = 0  # netlink writes the kernel carried out
        try:
            self.nl = nl.IPVSNetlink(IPVS())
        except Exception as exc:  # pyroute2 raises several types when the family is missing
            raise IPVSUnavailable(
                f"this kernel has no IPVS (the generic netlink family IPVS is missing: {exc}): load the kernel module with 'modprobe ip_vs' "
                "(the lvs.dr.director role does; in a container, load it on the host), or boot a kernel built with CONFIG_IP_VS"
            ) from None

    def close(self):
        self.nl.close()

    @property
    def requests(self):
        """Netlink requests sent: dumps and writes."""
        return self.nl.requests

    def services(self, with_stats=False):
        """[(service, counters)] for every service of the table."""
        return self.nl.dump(nl.CMD_GET_SERVICE, b"", lambda buf, top: nl.service_from_attributes(buf, top, with_stats))

    def reals(self, service, with_stats=False):
        """[(real, counts)] for every real server of SERVICE (none when it does not exist)."""
        af = nl.FAMILIES[service["family"]]
        return self.nl.dump(nl.CMD_GET_DEST, nl.service_identity(service), lambda buf, top: nl.real_from_attributes(buf, top, af, with_stats))

    def read(self, keys=None):
        """The table, one dump of the services and one of each service's real servers (of the
        services in KEYS only, if given): {service key: (service, {real key: real})}."""
        table = {}
        for service, _counters in self.services():
            key = service_key(service)
            wanted = keys is None or key in keys
            table[key] = (service, {real_key(r): r for r, _counts in self.reals(service)} if wanted else {})
        return table

    def write(self, writes):
        """Send [(what, action, service, real)], pipelined; the errno of each (0 done, None not sent)."""
        results = self.nl.write(nl.requests(writes))
        self.writes += results.count(0)
        return results

    def daemons(self):
        """[daemon] for each connection-sync daemon running in this network namespace (none, a
        master, a backup, or both)."""
        return self.nl.dump(nl.CMD_GET_DAEMON, b"", nl.daemon_from_attributes)

    def write_daemon(self, action, daemon):
        """Start ("add") or stop ("delete") the sync daemon DAEMON: the kernel's errno, 0 for done."""
        [code] = self.nl.write([nl.daemon_request(daemon, action)])
        self.writes += code == 0
        return code
