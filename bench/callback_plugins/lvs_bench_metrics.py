# Copyright (c) lvs.dr developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""bench/run's callback: appends what lvs.dr.ipvs_table returned (metrics, summary, changes,
drained; or the failure message) and the task's wall time on the controller (seconds) as one
JSON line to the file named by LVS_BENCH_METRICS."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: lvs_bench_metrics
type: aggregate
short_description: write lvs.dr.ipvs_table's results to $LVS_BENCH_METRICS
description: Used by bench/run only.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lvs_bench_metrics"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.task_started = {}

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.task_started[task._uuid] = time.monotonic()

    def _seconds(self, result):
        return round(time.monotonic() - self.task_started.get(result._task._uuid, time.monotonic()), 3)

    def _write(self, record):
        with open(os.environ["LVS_BENCH_METRICS"], "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")

    def v2_runner_on_ok(self, result):
        if "metrics" in result._result:
            keys = ("changed", "metrics", "summary", "changes", "drained")
            self._write({"task": result.task_name, "seconds": self._seconds(result), **{k: result._result.get(k) for k in keys}})

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write({"task": result.task_name, "failed": True, "msg": result._result.get("msg")})
