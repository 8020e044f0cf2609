"""Stand-in for the get-pip.py that ansible-test downloads from its own file server to put pip
into the empty virtual environments of `ansible-test sanity --venv`. That server is not
reachable from our machines, PyPI is: so take the pip bundled with Python (ensurepip), then
let it install what ansible-test asked for (`pip==24.2` and the like) from PyPI.

ansible-test runs this file as __main__ with get-pip.py's arguments; get-pip.py's own
`--no-setuptools`/`--no-wheel` mean "install only pip", which is what happens here."""

from __future__ import annotations

import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
# In a process of its own: ensurepip sets PIP_CONFIG_FILE=/dev/null in its process's
# environment, and the install below needs the machine's pip configuration (its CA bundle).
subprocess.run([sys.executable, "-m", "ensurepip"], check=True)
subprocess.run([sys.executable, "-m", "pip", "install", *args], check=True)
# ensurepip also brings setuptools on Python < 3.12; ansible-test's venvs start without it.
subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "setuptools"], check=False)
