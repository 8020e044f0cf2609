"""`scripts/lab up` refuses a host it cannot work on with a message that names what is
missing, and changes nothing: the running lab stays up, with its tap device."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from .conftest import LAB, lab

# Each case: a shell prelude run in a private mount namespace (so its bind mounts vanish
# with it), the environment, and what the message must say; {tmp} is the test's own folder.
CASES = {
    "not root": ("exec setpriv --reuid=65534 --regid=65534 --clear-groups", {}, "must run as root"),
    "bad LAB_ENGINE": ("", {"LAB_ENGINE": "qemu"}, "LAB_ENGINE must be auto, uml or local, not 'qemu'"),
    "no /dev/net/tun": (
        "touch {tmp}/no-tun && mount --bind {tmp}/no-tun /dev/net/tun &&",
        {"LAB_ENGINE": "uml"},
        "/dev/net/tun is missing",
    ),
    "too little disk": (
        "mkdir -p {tmp}/small && mount -t tmpfs -o size=1m none {tmp}/small &&",
        {"LAB_ENGINE": "uml", "LAB_CACHE": "{tmp}/small"},
        "GiB free under {tmp}/small; the lab needs 8 GiB",
    ),
    "cache not root's": (
        "mkdir {tmp}/cache && chown 65534 {tmp}/cache &&",
        {"LAB_CACHE": "{tmp}/cache"},
        "the cache {tmp}/cache is owned by uid 65534, not root",
    ),
    "host package missing": (
        # An empty dpkg database: every host package looks missing.
        "mount --bind /dev/null /var/lib/dpkg/status &&",
        {"LAB_NO_INSTALL": "1"},
        "missing host packages: user-mode-linux debootstrap debian-archive-keyring tinyproxy nftables",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_up_refuses_with_a_clear_message_and_changes_nothing(lab_env: dict[str, str], case: str, tmp_path: Path) -> None:
    prelude, env, message = CASES[case]
    prelude, message = prelude.format(tmp=tmp_path), message.format(tmp=tmp_path)
    env_args = [f"{k}={v.format(tmp=tmp_path)}" for k, v in env.items()]
    script = f'{prelude} env {" ".join(env_args)} "$0" up'
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(LAB)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0, result
    assert message in result.stderr, result.stderr
    assert lab("status").returncode == 0, "the running lab was disturbed"
    assert subprocess.run(["ip", "link", "show", "lvslab0"], capture_output=True, check=False).returncode == 0


@pytest.mark.parametrize("hidden", ["a folder above it", "a file in it"])
def test_up_refuses_a_checkout_the_guests_user_cannot_read(lab_env: dict[str, str], tmp_path: Path, hidden: str) -> None:
    """A copy of the lab's scripts: in pytest's own folders (0700, root's), or in a folder others may
    enter but with one file others may not read. The guest (its own user) could not read that checkout."""
    if hidden == "a folder above it":
        copy, message = tmp_path / "checkout", "does not let other users through to the checkout"
        copy.mkdir()
    else:
        copy = Path(tempfile.mkdtemp(prefix="lvs-lab-checkout-", dir="/tmp"))
        copy.chmod(0o755)
        message = f"{copy}/secret is not readable by other users"
    try:
        subprocess.run(["cp", "-r", str(LAB.parent), str(copy / "scripts")], check=True)
        (copy / "secret").touch(mode=0o600)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LAB_ENGINE": "uml"}
        result = subprocess.run([str(copy / "scripts" / "lab"), "up"], env=env, capture_output=True, text=True, timeout=120, check=False)
    finally:
        if hidden == "a file in it":
            shutil.rmtree(copy)
    assert result.returncode != 0, result
    assert message in result.stderr and str(copy) in result.stderr, result.stderr
    assert lab("status").returncode == 0, "the running lab was disturbed"
