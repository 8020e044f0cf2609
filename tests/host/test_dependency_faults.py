"""A dependency missing or too old: every module stops before touching anything, with an error
that says what is missing and how to get it. Each fault is real, on this host: its kernel has
no IPVS, pyroute2 is taken away or replaced by an old release from PyPI, the arptables
binaries are hidden.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ..integration.arptables.test_arptables_rule import rule_set
from ..integration.conftest import run
from .conftest import failed, hiding

# The project's rule: pyroute2's IPVS API is usable from 0.9.5 on.
PYROUTE2_MIN = "0.9.5"
# Debian 12's pyroute2 (before the IPVS API), and the last release before the minimum (with it).
OLD_PYROUTE2 = ["0.7.2", "0.9.4"]

SERVICE = {"address": "198.51.100.10", "port": 80, "protocol": "tcp"}
REAL = {"address": "198.51.100.11", "port": 80}
IPVS_MODULES = {
    "ipvs_info": {},
    "ipvs_service": SERVICE,
    "ipvs_real": {"service_address": SERVICE["address"], "service_port": 80, "protocol": "tcp", **REAL},
    "ipvs_table": {"services": [{**SERVICE, "reals": [REAL]}]},
    "ipvs_sync_daemon": {"mode": "master", "interface": "lo"},
}
NO_IPVS = "this kernel has no IPVS"


def kernel_has_ipvs() -> bool:
    modules = Path("/proc/modules").read_text() if Path("/proc/modules").exists() else ""
    return Path("/proc/net/ip_vs").exists() or any(line.split()[0] == "ip_vs" for line in modules.splitlines())


@pytest.fixture(scope="session")
def no_ipvs() -> None:
    """This host's kernel must lack IPVS, as the development host's does."""
    if kernel_has_ipvs():
        pytest.fail("this kernel has IPVS (/proc/net/ip_vs exists): the missing-ip_vs test needs a host without it, such as the development host")


def assert_untouched(result: dict) -> None:
    assert not result.get("changed"), result
    assert not kernel_has_ipvs(), "IPVS appeared in the kernel"


@pytest.mark.parametrize("module", sorted(IPVS_MODULES))
def test_missing_ip_vs_says_how_to_get_it(run_module, netns, no_ipvs, module):
    result = run_module(module, IPVS_MODULES[module], netns=netns)
    msg = failed(result)
    assert msg.startswith(f"{NO_IPVS} (the generic netlink family IPVS is missing"), msg
    for fix in ("modprobe ip_vs", "the lvs.dr.director role does", "load it on the host", "CONFIG_IP_VS"):
        assert fix in msg, (fix, msg)
    assert_untouched(result)


@pytest.fixture(scope="session")
def python_without_pyroute2(tmp_path_factory, collections_path) -> tuple[list[str], Path]:
    """(python argv, a PYTHONPATH dir): a Python that imports Ansible but not pyroute2.

    -S keeps site-packages (the venv's and the interpreter's own) off sys.path; the directory
    holds Ansible alone."""
    import ansible

    site = tmp_path_factory.mktemp("ansible-only")
    (site / "ansible").symlink_to(Path(ansible.__file__).parent)
    python = [sys.executable, "-S"]
    env = {"PYTHONPATH": f"{site}:{collections_path}", "PATH": "/usr/bin:/bin"}
    probe = subprocess.run([*python, "-c", "import ansible.module_utils.basic; import pyroute2"], capture_output=True, text=True, env=env, check=False)
    if "No module named 'pyroute2'" not in probe.stderr:
        pytest.fail(f"the Python meant to lack pyroute2 does not fail the right way on `import pyroute2` (exit {probe.returncode}):\n{probe.stderr}")
    return python, site


@pytest.mark.parametrize("module", sorted(IPVS_MODULES))
def test_missing_pyroute2_names_it_and_the_minimum(run_module, netns, python_without_pyroute2, module):
    python, site = python_without_pyroute2
    result = run_module(module, IPVS_MODULES[module], netns=netns, python=python, pythonpath=[site])
    msg = failed(result)
    assert msg.startswith(f"Failed to import the required Python library (pyroute2>={PYROUTE2_MIN}) on "), msg
    assert sys.executable in msg, msg
    assert NO_IPVS not in msg
    assert_untouched(result)


def test_rendered_and_parsed_need_neither_pyroute2_nor_ipvs(run_module, netns, no_ipvs, python_without_pyroute2):
    # ipvs_table's offline states, where both are missing: the text of the table, and back.
    python, site = python_without_pyroute2
    services = [
        {**SERVICE, "scheduler": "rr", "persistent_timeout": 60, "reals": [{**REAL, "upper_threshold": 9}]},
        {"fwmark": 7, "family": "ipv6", "reals": []},
    ]
    rendered = run_module("ipvs_table", {"state": "rendered", "services": services}, netns=netns, python=python, pythonpath=[site])
    text = "-A -t 198.51.100.10:80 -s rr -p 60\n-a -t 198.51.100.10:80 -r 198.51.100.11:80 -g -w 1 -x 9 -y 0\n-A -f 7 -6 -s wlc\n"
    assert rendered["rc"] == 0 and rendered["rendered"] == text, rendered
    parsed = run_module("ipvs_table", {"state": "parsed", "running_config": text}, netns=netns, python=python, pythonpath=[site])
    assert parsed["rc"] == 0, parsed
    assert parsed["parsed"] == [
        {
            **SERVICE,
            "scheduler": "rr",
            "persistent_timeout": 60,
            "reals": [{"address": REAL["address"], "forwarding_method": "dr", "weight": 1, "upper_threshold": 9}],
        },
        {"fwmark": 7, "family": "ipv6", "scheduler": "wlc", "reals": []},
    ]
    assert_untouched(rendered)


@pytest.fixture(scope="session", params=OLD_PYROUTE2)
def old_pyroute2(request, tmp_path_factory) -> tuple[str, Path]:
    """(version, directory): an old pyroute2 release installed from PyPI, once a session."""
    version = request.param
    target = tmp_path_factory.mktemp(f"pyroute2-{version}")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "--target", str(target), f"pyroute2=={version}"]
    proc = subprocess.run(pip, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"could not install pyroute2=={version} from PyPI (the too-old test needs the real release):\n{proc.stdout}{proc.stderr}")
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    where = "import pyroute2; print(pyroute2.__version__, pyroute2.__file__)"
    probe = subprocess.run([sys.executable, "-c", where], capture_output=True, text=True, env=env, check=False)
    if probe.stdout.split()[:1] != [version] or not probe.stdout.split()[1].startswith(str(target)):
        pytest.fail(f"pyroute2 {version} in {target} is not the one Python imports first: {probe.stdout}{probe.stderr}")
    return version, target


@pytest.mark.parametrize("module", sorted(IPVS_MODULES))
def test_old_pyroute2_names_its_version_and_how_to_upgrade(run_module, netns, old_pyroute2, module):
    version, target = old_pyroute2
    result = run_module(module, IPVS_MODULES[module], netns=netns, pythonpath=[target])
    msg = failed(result)
    assert msg.startswith(f"pyroute2 {version} is too old: its IPVS API needs pyroute2>={PYROUTE2_MIN}"), msg
    assert f"upgrade the one in {target / 'pyroute2'} " in msg, msg
    assert f"{sys.executable} -m pip install 'pyroute2>={PYROUTE2_MIN}'" in msg, msg
    assert NO_IPVS not in msg
    assert_untouched(result)


NO_ARPTABLES = {
    "legacy": ["the legacy arptables backend is not installed (arptables-legacy not found): install the package arptables (Debian, Ubuntu, RHEL)"],
    "nft": [
        "the nft arptables backend is not installed (arptables-nft or arptables-nft-save not found): "
        "install the package iptables (Debian, Ubuntu) or iptables-nft (RHEL)"
    ],
    "auto": [
        "no arptables backend is installed (neither arptables-nft with arptables-nft-save nor arptables-legacy found): ",
        "install the package iptables (Debian, Ubuntu) or iptables-nft (RHEL) for the nft backend, ",
        "or arptables (Debian, Ubuntu, RHEL) for the legacy one",
    ],
}


@pytest.mark.parametrize("backend", sorted(NO_ARPTABLES))
def test_missing_arptables_names_the_package(run_module, netns, backend):
    # Ansible's get_bin_path always searches /sbin, /usr/sbin and /usr/local/sbin besides PATH,
    # so a short PATH is not enough: the binaries are hidden in a mount namespace.
    for tool in ("legacy", "nft"):
        run("ip", "netns", "exec", netns, f"arptables-{tool}", "-A", "INPUT", "-d", "198.51.100.1", "-j", "DROP")
    before = {tool: rule_set(netns, tool) for tool in ("legacy", "nft")}
    assert all("198.51.100.1" in save for save in before.values()), before
    args = {"chain": "INPUT", "destination": "198.51.100.2", "jump": "DROP", "backend": backend}
    result = run_module("arptables_rule", args, netns=netns, wrapper=hiding("arptables"))
    msg = failed(result)
    assert msg == "".join(NO_ARPTABLES[backend])
    assert {tool: rule_set(netns, tool) for tool in ("legacy", "nft")} == before
    assert Path("/usr/sbin/arptables-legacy").stat().st_mode & 0o111, "the host's arptables-legacy was hidden outside the test's mount namespace"
