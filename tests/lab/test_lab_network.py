"""The lab exposes its engine only as an owner-only unix socket, reaches out only through its
proxy, which serves the guests alone, and no lab container publishes a port. What runs in the
guest (and so in any lab container: they are privileged) is contained: the guest runs as the
lab's own unprivileged user, whose own sockets are refused, so root in the guest (which can load
a kernel module into UML) gets no more than that user; the guest's network reaches this host
only at the proxy (the tap admits only its port), and the proxy (as nobody) forwards only to
Debian's mirror and PyPI. The cache is root's, its disks readable by the lab's group alone."""

from __future__ import annotations

import contextlib
import grp
import http.server
import ipaddress
import json
import os
import pwd
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import LAB, PROJECT, in_container, lab, must

LAB_USER = "lvs-dr-lab"
HOST_LINK = "169.254.77.1"
GUEST_LINK = "169.254.77.2"
# This host's end of the veth pair into the second guest's namespace.
VETH_HOST = "169.254.78.1"
PROXY_PORT = 8888


def lab_pids(run_dir: Path) -> set[int]:
    """Every host process of the lab: UML's process group, the proxy, the ssh forwarder."""
    pids = set()
    for pidfile in ("uml.pid", "tinyproxy.pid"):
        leader = int((run_dir / pidfile).read_text())
        out = subprocess.run(["pgrep", "-g", str(leader)], capture_output=True, text=True, check=False).stdout
        pids |= {leader, *map(int, out.split())}
    check = subprocess.run(["ssh", "-F", str(run_dir / "ssh_config"), "-O", "check", "lab"], capture_output=True, text=True, check=False)
    pids.add(int(check.stderr.split("pid=")[1].split(")")[0]))
    return pids


def test_docker_socket_is_owner_only(lab_env: dict[str, str]) -> None:
    host = lab_env["DOCKER_HOST"]
    assert host.startswith("unix://"), host
    st = os.stat(host.removeprefix("unix://"))
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.getuid(), oct(st.st_mode)
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(host.removeprefix("unix://"))
        s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.0 200"), "the engine does not answer on its socket"


def test_lab_listens_on_no_host_tcp_port_but_the_proxy(run_dir: Path) -> None:
    pids = lab_pids(run_dir)
    out = must_run(["ss", "-Hltnup"])
    listeners = []
    for line in out.splitlines():
        owners = {int(p) for p in _pids_in(line)}
        if owners & pids:
            listeners.append(line.split()[4])
    assert listeners == [f"{HOST_LINK}:{PROXY_PORT}"], f"lab listeners on the host: {listeners}"


def test_engine_is_not_on_any_guest_tcp_port(lab_env: dict[str, str]) -> None:
    out = must(lab("run", "--", "ss", "-Hltnp"))
    # containerd's stream server listens on loopback, which is allowed; nothing else.
    exposed = [
        ln.split()[3]
        for ln in out.splitlines()
        if ("dockerd" in ln or "containerd" in ln) and not ipaddress.ip_address(ln.split()[3].rsplit(":", 1)[0].strip("[]")).is_loopback
    ]
    assert exposed == [], f"the engine listens on {exposed}"
    for port in (2375, 2376):
        with socket.socket() as s, pytest.raises(ConnectionRefusedError):
            s.settimeout(5)
            s.connect((GUEST_LINK, port))


def test_link_is_link_local_and_guest_has_no_route_out(lab_env: dict[str, str]) -> None:
    for addr in (HOST_LINK, GUEST_LINK):
        assert ipaddress.ip_address(addr).is_link_local
    assert must(lab("run", "--", "ip", "route", "show", "default")).strip() == ""


def test_proxy_refuses_all_but_the_guest(lab_env: dict[str, str]) -> None:
    # From the host's own link address: tinyproxy answers 403, and forwards nothing.
    with socket.create_connection((HOST_LINK, PROXY_PORT), timeout=10, source_address=(HOST_LINK, 0)) as s:
        s.sendall(b"GET http://deb.debian.org/debian/ HTTP/1.0\r\n\r\n")
        assert s.recv(64).split()[1] == b"403"
    # Not on loopback at all.
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", PROXY_PORT))


def test_pip_in_guest_and_curl_in_container_work_through_the_proxy(lab_env: dict[str, str]) -> None:
    must(lab("run", "--", "pip", "download", "--no-deps", "-q", "-d", "/tmp/lab-pip-check", "pyroute2==0.9.7"))
    # A login shell in a container gets the proxy settings and the host's CA trust.
    code = must(in_container("client", "sh -lc 'curl -fsS -o /dev/null -w %{http_code} https://pypi.org/simple/pyroute2/'"))
    assert code.strip() == "200"


def must_run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def _pids_in(ss_line: str) -> list[str]:
    return [part.split(",")[0] for part in ss_line.split("pid=")[1:]]


def published_ports(container: dict, engine: str) -> list[str]:
    """How a container (docker inspect) reaches beyond the engine's own networks, if it does."""
    host = container["HostConfig"]
    found = []
    bindings = {port: b for port, b in (host.get("PortBindings") or {}).items() if b}
    bound = {port: b for port, b in ((container.get("NetworkSettings") or {}).get("Ports") or {}).items() if b}
    if bindings or bound or host.get("PublishAllPorts"):
        found.append(f"{container['Name']}: PortBindings {bindings}, Ports {bound}, PublishAllPorts {host.get('PublishAllPorts')}")
    if engine == "local" and host.get("NetworkMode") == "host":
        found.append(f"{container['Name']}: shares this host's network")
    return found


def test_no_lab_container_publishes_a_port(lab_env: dict[str, str], run_dir: Path) -> None:
    env = {**os.environ, **lab_env}
    engine = (run_dir / "engine").read_text().strip() if (run_dir / "engine").exists() else "none"
    names = must(subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, env=env, check=False)).split()
    assert {"director", "rs1", "rs2", "client"} <= set(names), f"the lab's containers are not all there: {names}"
    # Molecule's containers may come or go meanwhile (scripts/test runs it beside these tests).
    result = subprocess.run(["docker", "inspect", *names], capture_output=True, text=True, env=env, check=False)
    gone = [line for line in result.stderr.splitlines() if line.strip()]
    assert all("No such object" in line for line in gone), result.stderr
    inspected = json.loads(result.stdout)
    published = [finding for container in inspected for finding in published_ports(container, engine)]
    ps = must(subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}} {{.Ports}}"], capture_output=True, text=True, env=env, check=False))
    published += [line for line in ps.splitlines() if "->" in line]
    assert published == [], "lab containers publish ports:\n" + "\n".join(published)


def test_published_ports_tells_a_published_port_from_an_exposed_one() -> None:
    def container(ports: dict, mode: str = "lvs-lab", publish_all: bool = False) -> dict:
        return {"Name": "/c", "HostConfig": {"PortBindings": ports, "PublishAllPorts": publish_all, "NetworkMode": mode}, "NetworkSettings": {"Ports": ports}}

    assert published_ports(container({"80/tcp": None}), "uml") == []
    assert published_ports(container({"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}), "uml") != []
    assert published_ports(container({}, publish_all=True), "uml") != []
    assert published_ports(container({}, mode="host"), "local") == ["/c: shares this host's network"]
    assert published_ports(container({}, mode="host"), "uml") == []


@contextlib.contextmanager
def host_listener(address: str) -> Iterator[tuple[int, list[str]]]:
    """An HTTP server of this test's own on ADDRESS (a free port): its port and the paths it was asked for."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            asked.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"host secret")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((address, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], asked
    finally:
        server.shutdown()
        server.server_close()


def test_proxy_forwards_nothing_to_this_hosts_loopback(lab_env: dict[str, str]) -> None:
    with host_listener("127.0.0.1") as (port, asked):
        out = in_container("client", f"curl -sS -o /dev/null -w %{{http_code}} --max-time 20 -x http://{HOST_LINK}:{PROXY_PORT} http://127.0.0.1:{port}/secret")
    assert out.stdout.strip() == "403", out
    assert asked == [], f"the proxy forwarded to this host's loopback: {asked}"


def test_proxy_runs_as_its_own_user_and_allows_only_the_mirrors(run_dir: Path) -> None:
    pid = (run_dir / "tinyproxy.pid").read_text().strip()
    uids = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:")).split()[1:]
    assert set(uids) == {str(pwd.getpwnam("tinyproxy").pw_uid)}, f"tinyproxy runs as uids {uids}"
    conf = (run_dir / "tinyproxy.conf").read_text()
    assert "FilterDefaultDeny Yes" in conf and "ConnectPort 80\n" not in conf
    assert (run_dir / "tinyproxy.filter").read_text().split() == [r"^deb\.debian\.org$", r"^pypi\.org$", r"^files\.pythonhosted\.org$"]


def test_guest_reaches_no_host_port_but_the_proxy(lab_env: dict[str, str]) -> None:
    """A listener on every address of this host: the guest (and a container) cannot connect to it."""
    with host_listener("0.0.0.0") as (port, asked):
        probe = f"curl -sS -o /dev/null --noproxy '*' --max-time 5 http://{HOST_LINK}:{port}/x"
        from_guest = lab("run", "--", "sh", "-c", probe)
        from_container = in_container("client", probe)
    assert asked == [], f"the host's listener was reached from the lab: {asked}"
    # curl's 7: could not connect, at once (the tap's filter answers with a reject, not silence).
    assert (from_guest.returncode, from_container.returncode) == (7, 7), (from_guest, from_container)


def test_guest_runs_as_the_lab_user(run_dir: Path) -> None:
    uid = pwd.getpwnam(LAB_USER).pw_uid
    leader = (run_dir / "uml.pid").read_text().strip()
    pids = [leader, *subprocess.run(["pgrep", "-s", leader], capture_output=True, text=True, check=False).stdout.split()]
    uids = {
        line.split()[1:] and tuple(line.split()[1:]) for pid in pids for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:")
    }
    assert uids == {(str(uid),) * 4}, f"UML's processes run as {uids}, not {LAB_USER} ({uid})"


def test_root_in_the_guest_cannot_touch_this_hosts_files(lab_env: dict[str, str]) -> None:
    """Through hostfs (what a guest's root reaches this host with, beside a kernel module), as the lab's user."""
    script = r"""
d=$(mktemp -d); trap 'umount "$d" 2>/dev/null; rmdir "$d"' EXIT
mount -t hostfs none "$d" -o /
head -c1 "$d/etc/shadow" >/dev/null 2>&1 && echo "read /etc/shadow"
touch "$d$0/build/$1" 2>/dev/null && echo "wrote into the project"
mknod "$d/tmp/lab-canary-node" c 1 5 2>/dev/null && echo "made a device node"
echo done
"""
    canary = f"lab-canary-{os.getpid()}"
    out = must(lab("run", "--", "sh", "-c", script, str(PROJECT), canary))
    assert out.split() == ["done"], out
    assert not (PROJECT / "build" / canary).exists()


def test_the_lab_users_own_sockets_are_refused(lab_env: dict[str, str]) -> None:
    """What a kernel module in the guest would do: connect from UML's process to this host's loopback."""
    with host_listener("127.0.0.1") as (port, asked):
        result = subprocess.run(
            ["setpriv", f"--reuid={LAB_USER}", f"--regid={LAB_USER}", "--clear-groups", "curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{port}/"],
            capture_output=True,
            text=True,
            check=False,
        )
    assert asked == [] and result.returncode == 7, result


def test_only_root_opens_connections_to_the_guest(lab_env: dict[str, str]) -> None:
    """Another local user cannot reach the guest's sshd (nor anything else the guest listens on)."""
    probe = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "curl", "-sS", "--max-time", "5", f"telnet://{GUEST_LINK}:22"]
    result = subprocess.run(probe, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    assert result.returncode == 7, result


def test_links_and_files_planted_in_tmp_are_not_followed_while_the_lab_is_up(lab_env: dict[str, str]) -> None:
    """The guest's user can write /tmp: Debian's protections are on for as long as the lab is."""
    assert int(Path("/proc/sys/fs/protected_symlinks").read_text()) >= 1
    assert int(Path("/proc/sys/fs/protected_regular").read_text()) >= 2


def test_cache_is_roots_and_the_disks_the_guests_alone(run_dir: Path) -> None:
    cache = Path(os.environ.get("LAB_CACHE", "/var/cache/lvs-dr-lab"))
    group = grp.getgrnam(LAB_USER).gr_gid
    st = cache.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, group, 0o710), (st.st_uid, st.st_gid, oct(st.st_mode))
    for disk in cache.glob("disk-*.img"):
        st = disk.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, group, 0o640), (disk, oct(st.st_mode))
    for key in cache.glob("guest-*.key*"):
        assert stat.S_IMODE(key.stat().st_mode) & 0o077 == 0, (key, oct(key.stat().st_mode))
    cow = (cache / "uml" / "lvs-dr-lab.cow").stat()
    assert cow.st_uid == pwd.getpwnam(LAB_USER).pw_uid and stat.S_IMODE(cow.st_mode) & 0o077 == 0, oct(cow.st_mode)


def test_only_the_hosts_extra_cas_are_added(run_dir: Path) -> None:
    """The guest root and the images trust Debian's bundle plus the host's CAs it lacks, not every host CA."""
    # The running guest's root: its login key is that folder's name plus .key.
    key = next(line.split()[1] for line in (run_dir / "ssh_config").read_text().splitlines() if line.strip().startswith("IdentityFile"))
    guest = Path(key.removesuffix(".key"))
    added = sorted((guest / "usr/local/share/ca-certificates/lab-host").glob("*.crt"))
    debian = (guest / "etc/ssl/certs/ca-certificates.crt").read_text()
    host = Path(os.environ.get("LAB_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")).read_text()
    host_count = host.count("-----BEGIN CERTIFICATE-----")
    assert len(added) < host_count, f"{len(added)} of the host's {host_count} CAs were added"
    mozilla = "".join(f.read_text() for f in (guest / "usr/share/ca-certificates/mozilla").glob("*.crt"))
    for cert in added:
        pem = cert.read_text()
        assert pem in host and pem not in mozilla, f"{cert.name} is not an extra of the host's"
        assert pem in debian, f"{cert.name} is not trusted in the guest"


def test_the_second_guest_reaches_the_proxy_and_nothing_else(run_dir: Path) -> None:
    """The full run's second guest (LAB_GUESTS=2) boots the first's disk, so it has the same
    addresses, in a network namespace of its own: through it, the proxy serves it (a mirror
    answers, this host's listener gets a 403), and no listener of this host answers it, at the
    proxy's address or at the veth's; its UML runs as the lab's user too."""
    env = {**os.environ, "LAB_GUEST": "2"}
    status = subprocess.run([str(LAB), "status"], capture_output=True, text=True, env=env, check=False)
    if status.returncode != 0:
        pytest.fail(f"the second guest is down: run `LAB_GUESTS=2 scripts/lab up` (scripts/test's full run does)\n{status.stdout}{status.stderr}")
    proxy = f"http://{HOST_LINK}:{PROXY_PORT}"
    # Root in the guest routes to the veth's far end through the namespace, as it could; the
    # guest's no_proxy (link-local addresses) is cleared so that curl asks the proxy.
    route = f"ip route add {VETH_HOST}/32 via {HOST_LINK}"
    with host_listener("0.0.0.0") as (port, asked):
        probe = (
            f"trap 'ip route del {VETH_HOST}/32' EXIT; {route}; export no_proxy=; "
            f"curl -sS -o /dev/null -w '%{{http_code}}\\n' --max-time 60 -x {proxy} https://pypi.org/simple/pyroute2/; "
            f"curl -sS -o /dev/null -w '%{{http_code}}\\n' --max-time 20 -x {proxy} http://{VETH_HOST}:{port}/secret; "
            f"for url in http://{HOST_LINK}:{port}/x http://{VETH_HOST}:{port}/x; do curl -sS -o /dev/null --noproxy '*' --max-time 5 $url; echo $?; done"
        )
        result = subprocess.run([str(LAB), "run", "--", "sh", "-c", probe], capture_output=True, text=True, env=env, timeout=180, check=False)
    assert asked == [], f"the host's listener was reached from the second guest: {asked}"
    # curl's 7: could not connect, at once (the namespace's filter rejects).
    assert result.stdout.split() == ["200", "403", "7", "7"], result
    leader = (run_dir / "guest2" / "uml.pid").read_text().strip()
    uid = pwd.getpwnam(LAB_USER).pw_uid
    assert f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}" in Path(f"/proc/{leader}/status").read_text()
