"""Each role's README documents exactly the variables its meta/argument_specs.yml declares,
with the same default where the spec gives one, so the two cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"


@pytest.mark.parametrize("role", sorted(p.name for p in ROLES.iterdir() if p.is_dir()))
def test_readme_lists_the_argument_spec(role: str) -> None:
    spec = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    readme = (ROLES / role / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]*) \|", readme, re.M))
    assert sorted(rows) == sorted(spec), f"roles/{role}/README.md's variable table differs from meta/argument_specs.yml"
    for name, option in spec.items():
        if "default" in option:
            documented = yaml.safe_load(rows[name].strip().strip("`"))
            assert documented == option["default"], f"roles/{role}/README.md: {name}'s default is {documented!r}, the spec's {option['default']!r}"
