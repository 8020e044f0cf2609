"""Run a command with some executables hidden: hide_binaries.py PREFIX... -- ARGV...

Every file named PREFIX* in PATH and in the sbin directories Ansible's get_bin_path always
searches gets /dev/null (not executable) bind-mounted over it; then ARGV is executed.
Run it in a mount namespace of its own (`unshare --mount --propagation private`), so the
host never sees the mounts. Exits 97 if it found nothing to hide or anything it hid can still be executed.
"""

from __future__ import annotations

import os
import subprocess
import sys

SBIN = ("/sbin", "/usr/sbin", "/usr/local/sbin")


def main() -> None:
    split = sys.argv.index("--")
    prefixes, argv = sys.argv[1:split], sys.argv[split + 1 :]
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d] + list(SBIN)
    hidden = set()
    for directory in dirs:
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            if name.startswith(tuple(prefixes)):
                hidden.add(os.path.join(directory, name))
    for path in sorted({os.path.realpath(p) for p in hidden}):
        subprocess.run(["mount", "--bind", "/dev/null", path], check=True)
    if not hidden:
        sys.exit(f"hide_binaries: nothing named {' '.join(prefixes)}* in {dirs}: the fault would not be real")
    still = [p for p in sorted(hidden) if os.access(p, os.X_OK)]
    if still:
        print(f"hide_binaries: still executable: {still}", file=sys.stderr)
        sys.exit(97)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
