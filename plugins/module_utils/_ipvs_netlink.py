# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The IPVS generic netlink protocol: normalised entries (_ipvs_spec) to and from the kernel's
messages, as bytes, and the socket they go over.

PRIVATE to the collection: not a public API, it may change without notice.

pyroute2 opens the socket and resolves the IPVS family (IPVSSocket); the messages are packed and
parsed here with struct. pyroute2's own message objects decode every attribute into Python
objects: reading 11,000 entries that way took 7.1 s in the lab, 18 times ipvsadm's 0.4 s. The
layout below is the kernel's (net/netfilter/ipvs/ip_vs_ctl.c, include/uapi/linux/ip_vs.h).

Writes are pipelined: WINDOW requests go in one sendmsg, each with NLM_F_ACK, and the kernel
executes and acknowledges them one by one, in order. There is no transaction: a failed request
does not stop the ones after it, so callers stop after the first window that had an error.

This is the only place that raises NetlinkError: a dump the kernel refuses, or no answer.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import select
import socket
import struct

from ansible_collections.lvs.dr.plugins.module_utils._ipvs_spec import U32_MAX, family_of

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
GENL_VERSION = 1

CMD_NEW_SERVICE, CMD_SET_SERVICE, CMD_DEL_SERVICE, CMD_GET_SERVICE = 1, 2, 3, 4
CMD_NEW_DEST, CMD_SET_DEST, CMD_DEL_DEST, CMD_GET_DEST = 5, 6, 7, 8
CMD_NEW_DAEMON, CMD_DEL_DAEMON, CMD_GET_DAEMON = 9, 10, 11
# (what, action) -> the command that does it
WRITE_COMMANDS = {
    ("service", "add"): CMD_NEW_SERVICE,
    ("service", "set"): CMD_SET_SERVICE,
    ("service", "delete"): CMD_DEL_SERVICE,
    ("real", "add"): CMD_NEW_DEST,
    ("real", "set"): CMD_SET_DEST,
    ("real", "delete"): CMD_DEL_DEST,
}
ATTR_SERVICE, ATTR_DEST, ATTR_DAEMON = 1, 2, 3
# IPVS_SVC_ATTR_*
SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT, SVC_FWMARK, SVC_SCHED, SVC_FLAGS, SVC_TIMEOUT, SVC_NETMASK = range(1, 10)
SVC_STATS, SVC_PE, SVC_STATS64 = 10, 11, 12
# IPVS_DEST_ATTR_*
DEST_ADDR, DEST_PORT, DEST_FWD, DEST_WEIGHT, DEST_U_THRESH, DEST_L_THRESH = range(1, 7)
DEST_ACTIVE, DEST_INACT, DEST_PERSIST, DEST_STATS, DEST_AF, DEST_STATS64 = range(7, 13)
DEST_TUN_TYPE, DEST_TUN_PORT, DEST_TUN_FLAGS = 13, 14, 15
# IPVS_DAEMON_ATTR_*: the last five came in Linux 4.3 (older kernels neither send nor take them)
DAEMON_STATE, DAEMON_MCAST_IFN, DAEMON_SYNC_ID, DAEMON_SYNC_MAXLEN = range(1, 5)
DAEMON_MCAST_GROUP, DAEMON_MCAST_GROUP6, DAEMON_MCAST_PORT, DAEMON_MCAST_TTL = range(5, 9)
# IP_VS_STATE_*: a daemon's mode
DAEMON_MODES = {"master": 1, "backup": 2}
# IPVS_STATS_ATTR_*: CONNS, INPKTS, OUTPKTS, INBYTES, OUTBYTES
STATS_NAMES = ("connections", "packets_in", "packets_out", "bytes_in", "bytes_out")

# The kernel's numbers for the names of _ipvs_spec.
PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "sctp": 132}
FAMILIES = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
# IP_VS_CONN_F_MASQ, _LOCALNODE, _TUNNEL, _DROUTE, _BYPASS: local and bypass are never asked
# for, but a kernel entry with them is written back as it is (its weight set to 0 for a drain).
FORWARDING = {"nat": 0, "local": 1, "tunnel": 2, "dr": 3, "bypass": 4}
TUNNEL_TYPES = {"ipip": 0, "gue": 1, "gre": 2}
TUNNEL_CHECKSUMS = {"nocsum": 0, "csum": 1, "remcsum": 2}
# IP_VS_SVC_F_*; SCHED1/2 mean fallback/port for sh and mh alike.
SVC_F_PERSISTENT, SVC_F_HASHED, SVC_F_ONEPACKET = 0x1, 0x2, 0x4
SCHEDULER_FLAGS = {"sh-fallback": 0x8, "sh-port": 0x10, "mh-fallback": 0x8, "mh-port": 0x10}

WINDOW = 128  # requests per sendmsg: their ACKs must fit the socket's receive buffer
RCVBUF = 1 << 20
TIMEOUT = 60.0  # seconds to wait for the kernel's answer before giving up

_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type (the family), flags, seq, pid
_NLA = struct.Struct("=HH")
_I32 = struct.Struct("=i")
U16 = struct.Struct("=H")
U32 = struct.Struct("=I")
U64 = struct.Struct("=Q")
BE16 = struct.Struct(">H")
BE32 = struct.Struct(">I")
FLAGS = struct.Struct("=II")


def nla(kind, payload):
    """One netlink attribute, padded to 4 bytes."""
    size = 4 + len(payload)
    return _NLA.pack(size, kind) + payload + b"\0" * (-size & 3)


def attrs(buf, off, end):
    """One level of attributes from buf[off:end]: {type: (payload offset, payload length)}."""
    found = {}
    while off + 4 <= end:
        size, kind = _NLA.unpack_from(buf, off)
        if size < 4:
            break
        found[kind & 0x3FFF] = (off + 4, size - 4)
        off += (size + 3) & ~3
    return found


def u16(buf, a, kind):
    return U16.unpack_from(buf, a[kind][0])[0] if kind in a else 0


def u32(buf, a, kind):
    return U32.unpack_from(buf, a[kind][0])[0] if kind in a else 0


def be16(buf, a, kind):
    return BE16.unpack_from(buf, a[kind][0])[0] if kind in a else 0


def cstring(buf, a, kind):
    """A NUL-terminated string attribute; None when absent or empty."""
    if kind not in a:
        return None
    off, size = a[kind]
    return bytes(buf[off : off + size]).split(b"\0", 1)[0].decode() or None


def address(af, buf, off):
    """The address at buf[off:] (union nf_inet_addr) as text, compressed like ipaddress does."""
    if af == socket.AF_INET:
        return socket.inet_ntop(af, buf[off : off + 4])
    # ipaddress, not inet_ntop: the two spell IPv4-mapped IPv6 addresses differently
    return ipaddress.IPv6Address(bytes(buf[off : off + 16])).compressed


def packed_address(af, text):
    return socket.inet_pton(af, text).ljust(16, b"\0")


def stats(buf, a, kind64, kind32):
    """The traffic counters of a service or destination: STATS64 if the kernel sent it."""
    kind = kind64 if kind64 in a else kind32
    if kind not in a:
        return {}
    off, size = a[kind]
    inner = attrs(buf, off, off + size)
    out = {}
    for number, name in enumerate(STATS_NAMES, start=1):
        off, size = inner.get(number, (0, 0))
        out[name] = (U64 if size == 8 else U32).unpack_from(buf, off)[0] if size else 0
    return out


# --- entries <-> messages ----------------------------------------------------------------------

_PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}
_FORWARDING_NAMES = {v: k for k, v in FORWARDING.items()}
_TUNNEL_NAMES = {v: k for k, v in TUNNEL_TYPES.items()}
_FULL_PREFIX = {"ipv4": 32, "ipv6": 128}


def checksum_name(flags):
    """IP_VS_TUNNEL_ENCAP_FLAG_* as one name: the flags are bits, remote checksum offload wins."""
    return "remcsum" if flags & TUNNEL_CHECKSUMS["remcsum"] else "csum" if flags & TUNNEL_CHECKSUMS["csum"] else "nocsum"


def service_from_attributes(buf, top, with_stats=False):
    """A normalised service, and its traffic counters (WITH_STATS, else {}), from one message of
    a service dump (TOP: its top-level attributes)."""
    off, size = top[ATTR_SERVICE]
    a = attrs(buf, off, off + size)
    af = u16(buf, a, SVC_AF)
    family = "ipv6" if af == socket.AF_INET6 else "ipv4"
    fwmark = u32(buf, a, SVC_FWMARK) or None
    flags = u32(buf, a, SVC_FLAGS)  # struct ip_vs_flags: the flags, then the mask
    scheduler = cstring(buf, a, SVC_SCHED)
    timeout = u32(buf, a, SVC_TIMEOUT) if flags & SVC_F_PERSISTENT else 0
    prefix = _FULL_PREFIX[family]
    if timeout and SVC_NETMASK in a:
        # IPv4: the netmask in network order; IPv6: a host-order prefix length in the same 4 bytes
        prefix = bin(BE32.unpack_from(buf, a[SVC_NETMASK][0])[0]).count("1") if family == "ipv4" else u32(buf, a, SVC_NETMASK)
    entry = {
        "family": family,
        "protocol": None if fwmark else _PROTOCOL_NAMES.get(u16(buf, a, SVC_PROTOCOL)),
        "address": None if fwmark else address(af, buf, a[SVC_ADDR][0]),
        "port": None if fwmark else be16(buf, a, SVC_PORT),
        "fwmark": fwmark,
        "scheduler": scheduler,
        "persistent_timeout": timeout,
        "persistent_netmask": prefix,
        "persistence_engine": cstring(buf, a, SVC_PE),
        "scheduler_flags": sorted(n for n, bit in SCHEDULER_FLAGS.items() if flags & bit and n.startswith(f"{scheduler}-")),
        "one_packet": bool(flags & SVC_F_ONEPACKET),
    }
    return entry, stats(buf, a, SVC_STATS64, SVC_STATS) if with_stats else {}


def real_from_attributes(buf, top, service_af, with_stats=False):
    """A normalised real server, and its connection counts (plus its traffic counters under
    "stats" WITH_STATS), from one message of a destination dump of a service of address family
    SERVICE_AF."""
    off, size = top[ATTR_DEST]
    a = attrs(buf, off, off + size)
    af = u16(buf, a, DEST_AF) or service_af  # kernels before 3.18 do not send it
    method = _FORWARDING_NAMES.get(u32(buf, a, DEST_FWD) & 0x7, "local")
    tunnel = {"tunnel_type": None, "tunnel_port": None, "tunnel_checksum": None}
    if method == "tunnel":
        tunnel_type = _TUNNEL_NAMES.get(buf[a[DEST_TUN_TYPE][0]] if DEST_TUN_TYPE in a else 0)
        tunnel = {
            "tunnel_type": tunnel_type,
            "tunnel_port": be16(buf, a, DEST_TUN_PORT) if tunnel_type == "gue" else None,
            "tunnel_checksum": checksum_name(u16(buf, a, DEST_TUN_FLAGS)) if tunnel_type != "ipip" else None,
        }
    entry = {
        "address": address(af, buf, a[DEST_ADDR][0]),
        "port": be16(buf, a, DEST_PORT),
        "forwarding_method": method,
        "weight": u32(buf, a, DEST_WEIGHT),
        "upper_threshold": u32(buf, a, DEST_U_THRESH),
        "lower_threshold": u32(buf, a, DEST_L_THRESH),
        **tunnel,
    }
    counts = {
        "active_connections": u32(buf, a, DEST_ACTIVE),
        "inactive_connections": u32(buf, a, DEST_INACT),
        "persistent_connections": u32(buf, a, DEST_PERSIST),
    }
    if with_stats:
        counts["stats"] = stats(buf, a, DEST_STATS64, DEST_STATS)
    return entry, counts


def service_attributes(service, full=True):
    """The kernel's attributes of a normalised service: its identity, and with FULL the fields
    that NEW and SET need (SET without the persistence engine would clear it)."""
    af = FAMILIES[service["family"]]
    out = [nla(SVC_AF, U16.pack(af))]
    if service["fwmark"] is not None:
        out.append(nla(SVC_FWMARK, U32.pack(service["fwmark"])))
    else:
        out += [
            nla(SVC_PROTOCOL, U16.pack(PROTOCOLS[service["protocol"]])),
            nla(SVC_ADDR, packed_address(af, service["address"])),
            nla(SVC_PORT, BE16.pack(service["port"])),
        ]
    if full:
        flags = SVC_F_PERSISTENT if service["persistent_timeout"] else 0
        flags |= SVC_F_ONEPACKET if service["one_packet"] else 0
        for name in service["scheduler_flags"]:
            flags |= SCHEDULER_FLAGS[name]
        prefix = service["persistent_netmask"]
        netmask = BE32.pack(U32_MAX << (32 - prefix) & U32_MAX) if af == socket.AF_INET else U32.pack(prefix)
        out.append(nla(SVC_SCHED, service["scheduler"].encode() + b"\0"))
        if service["persistence_engine"]:
            out.append(nla(SVC_PE, service["persistence_engine"].encode() + b"\0"))
        out += [
            nla(SVC_FLAGS, FLAGS.pack(flags, U32_MAX & ~SVC_F_HASHED)),
            nla(SVC_TIMEOUT, U32.pack(service["persistent_timeout"])),
            nla(SVC_NETMASK, netmask),
        ]
    return b"".join(out)


def real_attributes(real, action):
    """The kernel's attributes of a normalised real server: for delete its identity, else all of
    them, since SET_DEST resets what it is not given (the tunnel settings too)."""
    af = FAMILIES[family_of(real["address"])]
    identity = [nla(DEST_AF, U16.pack(af)), nla(DEST_ADDR, packed_address(af, real["address"])), nla(DEST_PORT, BE16.pack(real["port"]))]
    if action == "delete":
        return b"".join(identity)
    tunnel = real["forwarding_method"] == "tunnel"
    return b"".join(
        (
            *identity,
            nla(DEST_FWD, U32.pack(FORWARDING[real["forwarding_method"]])),
            nla(DEST_WEIGHT, U32.pack(real["weight"])),
            nla(DEST_U_THRESH, U32.pack(real["upper_threshold"])),
            nla(DEST_L_THRESH, U32.pack(real["lower_threshold"])),
            nla(DEST_TUN_TYPE, bytes((TUNNEL_TYPES[real["tunnel_type"]] if tunnel else 0,))),
            nla(DEST_TUN_PORT, BE16.pack(real["tunnel_port"] or 0 if tunnel else 0)),
            nla(DEST_TUN_FLAGS, U16.pack(TUNNEL_CHECKSUMS[real["tunnel_checksum"] or "nocsum"] if tunnel else 0)),
        )
    )


def service_identity(service):
    """nla(ATTR_SERVICE, ...) naming SERVICE: the body of a destination dump."""
    return nla(ATTR_SERVICE, service_attributes(service, full=False))


_MODE_NAMES = {v: k for k, v in DAEMON_MODES.items()}


def daemon_from_attributes(buf, top):
    """A normalised sync daemon from one message of a daemon dump (TOP: its top-level attributes).
    The fields of Linux 4.3 are None where an older kernel leaves them out."""
    off, size = top[ATTR_DAEMON]
    a = attrs(buf, off, off + size)
    group = None
    if DAEMON_MCAST_GROUP6 in a:
        group = address(socket.AF_INET6, buf, a[DAEMON_MCAST_GROUP6][0])
    elif DAEMON_MCAST_GROUP in a:
        group = address(socket.AF_INET, buf, a[DAEMON_MCAST_GROUP][0])
    return {
        "mode": _MODE_NAMES.get(u32(buf, a, DAEMON_STATE), str(u32(buf, a, DAEMON_STATE))),
        "interface": cstring(buf, a, DAEMON_MCAST_IFN),
        "syncid": u32(buf, a, DAEMON_SYNC_ID),
        "sync_maxlen": u16(buf, a, DAEMON_SYNC_MAXLEN) if DAEMON_SYNC_MAXLEN in a else None,
        "mcast_group": group,
        # host order, unlike a service's port: the kernel adds the thread number to it before htons
        "mcast_port": u16(buf, a, DAEMON_MCAST_PORT) if DAEMON_MCAST_PORT in a else None,
        "mcast_ttl": buf[a[DAEMON_MCAST_TTL][0]] if DAEMON_MCAST_TTL in a else None,
    }


def daemon_request(daemon, action):
    """(command, body) that starts ("add") or stops ("delete") the sync daemon DAEMON (normalised;
    to stop one, only its mode counts). The kernel has no SET for a daemon. Every field is sent,
    so the kernel starts exactly the daemon described, not its own defaults."""
    state = nla(DAEMON_STATE, U32.pack(DAEMON_MODES[daemon["mode"]]))
    if action == "delete":
        return CMD_DEL_DAEMON, nla(ATTR_DAEMON, state)
    out = [state, nla(DAEMON_MCAST_IFN, daemon["interface"].encode() + b"\0"), nla(DAEMON_SYNC_ID, U32.pack(daemon["syncid"]))]
    if daemon.get("sync_maxlen") is not None:
        out.append(nla(DAEMON_SYNC_MAXLEN, U16.pack(daemon["sync_maxlen"])))
    if daemon.get("mcast_group") is not None:
        af = FAMILIES[family_of(daemon["mcast_group"])]
        kind = DAEMON_MCAST_GROUP6 if af == socket.AF_INET6 else DAEMON_MCAST_GROUP
        out.append(nla(kind, socket.inet_pton(af, daemon["mcast_group"])))
    if daemon.get("mcast_port") is not None:
        out.append(nla(DAEMON_MCAST_PORT, U16.pack(daemon["mcast_port"])))
    if daemon.get("mcast_ttl") is not None:
        out.append(nla(DAEMON_MCAST_TTL, bytes((daemon["mcast_ttl"],))))
    return CMD_NEW_DAEMON, nla(ATTR_DAEMON, b"".join(out))


def requests(writes):
    """The (command, body) of each write (what, action, service, real): what is "service" or
    "real", action "add", "set" or "delete", real None for a service's own write. A service's
    identity is built once for all its real servers."""
    identities, out = {}, []
    for what, action, service, real in writes:
        if what == "service":
            out.append((WRITE_COMMANDS[what, action], nla(ATTR_SERVICE, service_attributes(service, full=action != "delete"))))
            continue
        key = id(service)
        if key not in identities:
            identities[key] = service_identity(service)
        out.append((WRITE_COMMANDS[what, action], identities[key] + nla(ATTR_DEST, real_attributes(real, action))))
    return out


# --- the socket --------------------------------------------------------------------------------


class NetlinkError(OSError):
    """The kernel refused a request: errno and strerror, like OSError."""


class IPVSNetlink:
    """Requests on one IPVS generic netlink socket. SOCK is pyroute2's IPVS(): it resolved the
    family; its send and recv go straight to the kernel."""

    def __init__(self, sock):
        self.sock = sock
        self.family = sock.prid
        self.fileno = sock.asyncore.socket.fileno()
        self.seq = 0
        self.requests = 0  # every request sent: dumps and writes
        with contextlib.suppress(OSError):  # the default (rmem_default) holds a window's ACKs too
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)

    def close(self):
        self.sock.close()

    def _message(self, cmd, flags, body):
        self.seq += 1
        self.requests += 1
        return _HDR.pack(20 + len(body), self.family, flags, self.seq, 0) + bytes((cmd, GENL_VERSION, 0, 0)) + body

    def _recv(self):
        while True:
            try:
                return self.sock.recv(1 << 16)
            except BlockingIOError:  # pyroute2 leaves its socket non-blocking
                if not select.select([self.fileno], [], [], TIMEOUT)[0]:
                    raise NetlinkError(errno.ETIMEDOUT, f"no answer from the kernel in {TIMEOUT:.0f}s") from None
            except OSError as exc:  # ENOBUFS: the kernel dropped messages the buffer could not hold
                raise NetlinkError(exc.errno, exc.strerror) from None

    def dump(self, cmd, body, parse):
        """[parse(buf, attributes of the message's top level)] for every message of a dump."""
        self.sock.send(self._message(cmd, NLM_F_REQUEST | NLM_F_DUMP, body))
        out = []
        while True:
            buf = self._recv()
            off = 0
            while off + 16 <= len(buf):
                size, kind = _HDR.unpack_from(buf, off)[:2]
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    code = -_I32.unpack_from(buf, off + 16)[0]
                    if code:
                        raise NetlinkError(code, f"the kernel refused the dump: errno {code}")
                else:
                    out.append(parse(buf, attrs(buf, off + 20, off + size)))
                off += (size + 3) & ~3

    def write(self, requests):
        """Send [(cmd, body)] in windows of WINDOW; the errno of each (0 for done). After a window
        with an error nothing more is sent: the rest are None (not sent)."""
        results = [None] * len(requests)
        for start in range(0, len(requests), WINDOW):
            first_seq = self.seq + 1
            batch = requests[start : start + WINDOW]
            self.sock.send(b"".join(self._message(cmd, NLM_F_REQUEST | NLM_F_ACK, body) for cmd, body in batch))
            waiting = len(batch)
            while waiting:
                buf = self._recv()
                off = 0
                while off + 20 <= len(buf):
                    size, kind, _flags, seq, _pid = _HDR.unpack_from(buf, off)
                    index = start + seq - first_seq
                    if kind == NLMSG_ERROR and 0 <= seq - first_seq < len(batch) and results[index] is None:
                        results[index] = -_I32.unpack_from(buf, off + 16)[0]
                        waiting -= 1
                    off += (size + 3) & ~3
            if any(results[start : start + len(batch)]):
                break
        return results
