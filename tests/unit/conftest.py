"""Unit tests import the collection as Ansible does: ansible_collections.lvs.dr is this checkout."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

_ROOT = Path(tempfile.mkdtemp(prefix="lvs-dr-unit-"))
(_ROOT / "ansible_collections" / "lvs").mkdir(parents=True)
(_ROOT / "ansible_collections" / "lvs" / "dr").symlink_to(Path(__file__).resolve().parents[2])
sys.path.insert(0, str(_ROOT))
