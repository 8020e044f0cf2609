"""The zero-downtime load test; bench/run starts it on the host once the lab is up and site.yml
has converged the seed topology.

The lab's client sends HTTP requests to the VIP only, each on a new connection, at a fixed rate,
while lvs.dr.ipvs_table (one ansible-playbook run per step, on the lab's director) makes three
changes one after another:

  1. weight: rs1's weight 1 -> 3 (an in-place netlink SET);
  2. drain:  rs2 state drained (weight 0, wait until the kernel shows no connections, remove);
  3. add:    rs2 added back as a new real server, rs1's weight back to 1.

The load stops a few seconds after the last step (at most --max-seconds). The report: requests
sent, answered, failed (resets, refusals, timeouts, other errors), and who answered in each
phase. For the drain to finish within the test, the director's IPVS tcpfin timeout (how long
the kernel keeps a closed connection, 120 s by default) is 5 s during the test and restored
afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
VIP, PORT = "172.25.8.100", 80
REALS = {"rs1": "172.25.8.2", "rs2": "172.25.8.3"}
STOP_FILE = "/tmp/lvs-bench-load-stop"
STARTED = time.monotonic()

# Runs in the client container: one thread per request, started on a fixed schedule; stops
# at the stop file or after max seconds. Prints one JSON object: every request's start time
# (wall clock) and outcome.
LOAD = r"""
import json, os, socket, sys, threading, time
vip, port, rate, max_seconds, stop_file = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
timeout = float(sys.argv[6]) if len(sys.argv) > 6 else 5
results, lock = [], threading.Lock()
def one(started):
    try:
        with socket.create_connection((vip, port), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: lvs\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        outcome = body.decode().strip() if head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200") else "bad-status"
    except ConnectionResetError:
        outcome = "reset"
    except ConnectionRefusedError:
        outcome = "refused"
    except (socket.timeout, TimeoutError):
        outcome = "timeout"
    except OSError as exc:
        outcome = f"error:{exc.errno}"
    with lock:
        results.append((started, outcome))
if os.path.exists(stop_file):
    os.unlink(stop_file)
begin, threads, i = time.time(), [], 0
while time.time() - begin < max_seconds and not os.path.exists(stop_file):
    due = begin + i / rate
    if due > time.time():
        time.sleep(due - time.time())
    t = threading.Thread(target=one, args=(time.time(),))
    t.start()
    threads.append(t)
    i += 1
for t in threads:
    t.join()
print(json.dumps({"begin": begin, "end": time.time(), "rate": rate, "results": sorted(results)}))
"""


def say(text):
    print(f"[load {time.monotonic() - STARTED:5.0f}s] {text}", file=sys.stderr, flush=True)


def docker(*argv, **kwargs):
    return subprocess.run(["docker", *argv], check=True, capture_output=True, text=True, **kwargs).stdout


def reals(rs1_weight, rs2_state):
    out = [{"address": REALS["rs1"], "weight": rs1_weight}]
    if rs2_state != "absent":
        out.append({"address": REALS["rs2"], "state": rs2_state})
    return out


STEPS = [
    ("weight", "rs1's weight 1 -> 3", reals(3, "present")),
    ("drain", "rs2 drained (weight 0, connections end, removed)", reals(3, "drained")),
    ("add", "rs2 added back, rs1's weight back to 1", reals(1, "present")),
]


def play(step_reals, venv):
    """One ansible-playbook run of lvs.dr.ipvs_table on the lab's director; its result."""
    out = PROJECT / "build" / "bench"
    playbook, record = out / "load-step.yml", out / "load-step.jsonl"
    record.unlink(missing_ok=True)
    playbook.write_text(
        json.dumps(
            [
                {
                    "hosts": "directors",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Change the seed service",
                            "vars": {"ansible_python_interpreter": f"{venv}/bin/python"},
                            "lvs.dr.ipvs_table": {
                                "services": [{"protocol": "tcp", "address": VIP, "port": PORT, "scheduler": "rr", "reals": step_reals}],
                                "drain_timeout": 60,
                            },
                        }
                    ],
                }
            ]
        )
    )
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "LVS_BENCH_METRICS": str(record),
        "ANSIBLE_CALLBACK_PLUGINS": str(PROJECT / "bench" / "callback_plugins"),
        "ANSIBLE_CALLBACKS_ENABLED": "lvs_bench_metrics",
    }
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-i", "inventories/lab"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode or not record.exists():
        raise SystemExit(f"the step's playbook failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return json.loads(record.read_text().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=20, help="requests per second (default 20)")
    parser.add_argument("--pause", type=float, default=5, help="seconds of load before, between and after the steps (default 5)")
    parser.add_argument("--max-seconds", type=float, default=300, help="the load stops after this in any case (default 300)")
    parser.add_argument("--venv", default="/opt/lvs-dr/venv", help="the director's virtualenv (the role's director_venv)")
    args = parser.parse_args()
    (PROJECT / "build" / "bench").mkdir(parents=True, exist_ok=True)

    listing = docker("exec", "director", "ipvsadm", "-Ln")
    if f"{VIP}:{PORT}" not in listing or any(f"{a}:{PORT}" not in listing for a in REALS.values()):
        raise SystemExit(f"the director does not balance {VIP}:{PORT} over rs1 and rs2; run site.yml first:\n{listing}")
    timeouts = docker("exec", "director", "ipvsadm", "-L", "--timeout").split(":")[-1].split()
    docker("exec", "director", "ipvsadm", "--set", timeouts[0], "5", timeouts[2])
    say(f"load: {args.rate:g} requests/s to http://{VIP}/ from the client, each on a new connection")
    load = subprocess.Popen(
        ["docker", "exec", "client", "python3", "-c", LOAD, VIP, str(PORT), str(args.rate), str(args.max_seconds), STOP_FILE], stdout=subprocess.PIPE, text=True
    )
    steps = []
    try:
        time.sleep(args.pause)
        for name, title, step_reals in STEPS:
            begin = time.time()
            result = play(step_reals, args.venv)
            steps.append({"step": name, "title": title, "begin": begin, "end": time.time(), "changes": result["changes"], "drained": result.get("drained")})
            say(
                f"{name}: {title}: {len(result['changes'])} writes in {time.time() - begin:.1f}s"
                + (f", drained after {result['drained'][0]['waited']}s" if result.get("drained") else "")
            )
            time.sleep(args.pause)
    finally:
        docker("exec", "client", "touch", STOP_FILE)
        out, _err = load.communicate(timeout=120)
        docker("exec", "director", "ipvsadm", "--set", *timeouts)
    report = summarise(json.loads(out), steps, args)
    path = PROJECT / "build" / "bench" / "load.md"
    path.write_text(report + "\n")
    print(report)
    return 0 if "| failed | 0 |" in report else 1


def summarise(load, steps, args):
    results = load["results"]
    outcomes = [o for _t, o in results]
    failed = [o for o in outcomes if o not in REALS]
    kinds = {k: sum(o == k for o in failed) for k in ("reset", "refused", "timeout")}
    phases = [("before", load["begin"], steps[0]["begin"])]
    phases += [(s["step"], s["begin"], nxt["begin"]) for s, nxt in zip(steps, steps[1:], strict=False)]
    phases.append((steps[-1]["step"], steps[-1]["begin"], load["end"]))
    lines = [
        f"Load: {args.rate:g} requests/s for {load['end'] - load['begin']:.0f} s to http://{VIP}/ (the VIP only), each on a new "
        "connection, from the lab's client.",
        "",
        "| requests | count |",
        "|---|---|",
        f"| sent | {len(results)} |",
        f"| answered (200) | {len(results) - len(failed)} |",
        f"| failed | {len(failed)} |",
        f"| of which reset | {kinds['reset']} |",
        f"| of which refused | {kinds['refused']} |",
        f"| of which timed out | {kinds['timeout']} |",
        f"| of which other | {len(failed) - sum(kinds.values())} |",
        "",
        "| phase (from its step's start) | step took | writes | requests | rs1 | rs2 | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    by_step = {s["step"]: s for s in steps}
    for name, begin, end in phases:
        inside = [o for t, o in results if begin <= t < end]
        step = by_step.get(name)
        took = f"{step['end'] - step['begin']:.1f} s" if step else "-"
        writes = (
            ", ".join(f"{c['action']} {c['real']}" + (f" ({', '.join(c['fields'])})" if c["action"] == "set" else "") for c in step["changes"]) if step else "-"
        )
        title = step["title"] if step else "before the changes"
        lines.append(
            f"| {name}: {title} | {took} | {writes} | {len(inside)} | {inside.count('rs1')} | {inside.count('rs2')} | {sum(o not in REALS for o in inside)} |"
        )
    drained = by_step["drain"]["drained"] or []
    if drained:
        lines += ["", f"The drain waited {drained[0]['waited']} s for rs2's connections to end (IPVS tcpfin timeout 5 s during the test)."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
