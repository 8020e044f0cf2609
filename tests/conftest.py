"""What every test session shares: the record of the bad-input cases (docs/internal/bad-input.md).

A test marked `@pytest.mark.bad_input("MODULE or role NAME")` runs one bad input against the real
thing and checks that it fails naming the option, and that nothing changed. When
LVS_BAD_INPUT_RESULTS names a file, each such case is appended to it as one JSON line: what was
tried, the message it had to give, and whether it held. scripts/bad-input-doc turns those lines
into docs/internal/bad-input.md.
"""

from __future__ import annotations

import json
import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bad_input(subject): one bad input for SUBJECT (a module or role), recorded for docs/internal/bad-input.md")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    marker = item.get_closest_marker("bad_input")
    path = os.environ.get("LVS_BAD_INPUT_RESULTS")
    if marker and path and (report.when == "call" or (report.when == "setup" and report.failed)):
        params = getattr(item, "callspec", None)
        params = params.params if params else {}
        case = {
            "subject": marker.args[0],
            "test": item.nodeid,
            "input": params.get("params", params.get("args")),
            "message": params.get("message"),
            "variant": params.get("backend"),
            "held": report.passed,
        }
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(case, default=str) + "\n")
    return report
