# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The IPVS generic netlink protocol: messages to and from the kernel, as bytes.

PRIVATE to the collection: not a public API, it may change without notice.

pyroute2 opens the socket and resolves the IPVS family (IPVSSocket); the messages are packed and
parsed here with struct. pyroute2's own message objects decode every attribute into Python
objects: reading 11,000 entries that way took 7.1 s in the lab, 18 times ipvsadm's 0.4 s. The
layout below is the kernel's (net/netfilter/ipvs/ip_vs_ctl.c, include/uapi/linux/ip_vs.h).

Writes are pipelined: WINDOW requests go in one sendmsg, each with NLM_F_ACK, and the kernel
executes and acknowledges them one by one, in order. There is no transaction: a failed request
does not stop the ones after it, so callers stop after the first window that had an error.
"""

from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
import struct

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
GENL_VERSION = 1

CMD_NEW_SERVICE, CMD_SET_SERVICE, CMD_DEL_SERVICE, CMD_GET_SERVICE = 1, 2, 3, 4
CMD_NEW_DEST, CMD_SET_DEST, CMD_DEL_DEST, CMD_GET_DEST = 5, 6, 7, 8
# (what, action) -> the command that does it
WRITE_COMMANDS = {
    ("service", "add"): CMD_NEW_SERVICE,
    ("service", "set"): CMD_SET_SERVICE,
    ("service", "delete"): CMD_DEL_SERVICE,
    ("real", "add"): CMD_NEW_DEST,
    ("real", "set"): CMD_SET_DEST,
    ("real", "delete"): CMD_DEL_DEST,
}
ATTR_SERVICE, ATTR_DEST = 1, 2
# IPVS_SVC_ATTR_*
SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT, SVC_FWMARK, SVC_SCHED, SVC_FLAGS, SVC_TIMEOUT, SVC_NETMASK = range(1, 10)
SVC_STATS, SVC_PE, SVC_STATS64 = 10, 11, 12
# IPVS_DEST_ATTR_*
DEST_ADDR, DEST_PORT, DEST_FWD, DEST_WEIGHT, DEST_U_THRESH, DEST_L_THRESH = range(1, 7)
DEST_ACTIVE, DEST_INACT, DEST_PERSIST, DEST_STATS, DEST_AF, DEST_STATS64 = range(7, 13)
DEST_TUN_TYPE, DEST_TUN_PORT, DEST_TUN_FLAGS = 13, 14, 15
# IPVS_STATS_ATTR_*: CONNS, INPKTS, OUTPKTS, INBYTES, OUTBYTES
STATS_NAMES = ("connections", "packets_in", "packets_out", "bytes_in", "bytes_out")

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
                    raise NetlinkError(110, f"no answer from the kernel in {TIMEOUT:.0f}s") from None

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
