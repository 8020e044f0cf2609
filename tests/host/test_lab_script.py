"""scripts/lab's own hygiene on this host, without a lab: installing the host packages keeps
packaged services from starting with Debian's policy-rc.d, and puts back the one that was there.

It runs `scripts/lab deps` in a private mount namespace, with a folder of its own over /usr/sbin
(where policy-rc.d lives) and dpkg-query, apt-get and systemctl replaced by stand-ins on PATH:
nothing on this host is installed or changed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..integration.conftest import PROJECT

LAB = PROJECT / "scripts" / "lab"
MINE = "#!/bin/sh\n# the administrator's own policy\nexit 0\n"


def run_deps(tmp_path: Path, apt_get: str, policy: str | None) -> Path:
    """`scripts/lab deps` with every host package looking missing, APT_GET as apt-get's script and
    POLICY (or none) as /usr/sbin/policy-rc.d; returns the folder that stood in for /usr/sbin."""
    sbin, bin_ = tmp_path / "sbin", tmp_path / "bin"
    for folder in (sbin, bin_):
        folder.mkdir()
    if policy is not None:
        (sbin / "policy-rc.d").write_text(policy)
        (sbin / "policy-rc.d").chmod(0o755)
    for name, script in {"dpkg-query": "echo 'deinstall ok config-files'\n", "apt-get": apt_get, "systemctl": "exit 0\n"}.items():
        (bin_ / name).write_text("#!/bin/sh\n" + script)
        (bin_ / name).chmod(0o755)
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", 'mount --bind "$1" /usr/sbin && exec "$2" deps', "sh", str(sbin), str(LAB)],
        env={"PATH": f"{bin_}:/usr/bin:/bin", "LAB_CACHE": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result
    return sbin


def test_deps_puts_back_an_existing_policy_rc_d(tmp_path: Path) -> None:
    sbin = run_deps(tmp_path, f'cat /usr/sbin/policy-rc.d >>"{tmp_path}/during"\n', MINE)
    during = (tmp_path / "during").read_text()
    assert during.count("exit 101") == 2, f"apt-get ran without the lab's policy-rc.d: {during!r}"
    assert (sbin / "policy-rc.d").read_text() == MINE, "the administrator's policy-rc.d was not put back"
    assert sorted(p.name for p in sbin.iterdir()) == ["policy-rc.d"], "a saved copy was left behind"


def test_deps_leaves_no_policy_rc_d_where_there_was_none(tmp_path: Path) -> None:
    sbin = run_deps(tmp_path, "test -x /usr/sbin/policy-rc.d\n", None)
    assert list(sbin.iterdir()) == []
