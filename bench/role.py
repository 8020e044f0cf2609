"""The director role as users run it: ansible-playbook on the host (the controller), the role on
a container of the lab's engine (community.docker.docker_api over DOCKER_HOST, as tests/lab
does); bench/run starts it on the host.

The container (lvs-bench-director, the lab's baked Debian 12 image, on Docker's default bridge
so that it touches neither the seed topology nor its network) gets a dummy interface bench0 on
198.18.0.0/15, the benchmarking range: the VIPs are bound there and the real servers are on it
(no packet is sent). A first converge, not timed, installs what the role installs. Then for each
size (services x 10 real servers, 100 services a VIP, ports 10000 up), each run starts from an
empty IPVS table (ipvsadm -C) and converges the role: the playbook's wall time, the
lvs.dr.ipvs_table task's (on the controller, by bench/callback_plugins) and the module's own
time (its metrics). The role's own cost is the playbook's time minus the ipvs_table task's: what
the role adds around the module (facts, checks, installs, units, the handler that saves the
table). Prints a markdown table of medians and the ratio of the role's own cost between the two
sizes to their ratio of entries (linear: about 1); build/bench/role.md and role.json, and
each size's last playbook output with profile_tasks' times (role-N.log).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
CONTAINER = "lvs-bench-director"
IMAGE = "lvs-dr-lab/debian12:baked"
REALS = 10
PLAY = """- hosts: bench
  gather_facts: true
  roles:
    - role: lvs.dr.director
"""
STARTED = time.monotonic()


def say(text):
    print(f"[bench/role {time.monotonic() - STARTED:5.0f}s] {text}", file=sys.stderr, flush=True)


def docker(*argv, **kwargs):
    return subprocess.run(["docker", *argv], check=True, capture_output=True, text=True, **kwargs).stdout


def services(count):
    """COUNT services on 198.18.0.x (100 a VIP, ports 10000 up), each with REALS real servers 198.19.x.y."""
    return [
        {"protocol": "tcp", "address": f"198.18.0.{1 + i // 100}", "port": 10000 + i % 100, "scheduler": "wlc",
         "reals": [{"address": f"198.19.{(i * REALS + j) >> 8}.{(i * REALS + j) & 255}", "weight": 1} for j in range(REALS)]}
        for i in range(count)
    ]  # fmt: skip


def start_container():
    subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True, check=False)
    docker("run", "-d", "--name", CONTAINER, "--hostname", CONTAINER, "--privileged", "--cgroupns=private", "--stop-signal", "SIGRTMIN+3",
           "--tmpfs", "/run", "--tmpfs", "/run/lock", IMAGE)  # fmt: skip
    for _attempt in range(30):  # an exec right after the start can find no systemd yet
        argv = ["docker", "exec", CONTAINER, "timeout", "300", "systemctl", "is-system-running", "--wait"]
        state = subprocess.run(argv, capture_output=True, text=True, check=False)
        if state.stdout.strip() in ("running", "degraded"):
            break
        time.sleep(2)
    else:
        raise SystemExit(f"{CONTAINER}: systemd is {state.stdout.strip()!r} ({state.stderr.strip()})")
    docker("exec", CONTAINER, "sh", "-c", "ip link add bench0 type dummy && ip addr add 198.19.255.254/15 dev bench0 && ip link set bench0 up")


class Run:
    def __init__(self, workdir, out):
        self.workdir = Path(workdir)
        self.out = out
        (self.workdir / "play.yml").write_text(PLAY)
        inventory = {
            "all": {
                "hosts": {CONTAINER: {}},
                "children": {"bench": {"hosts": {CONTAINER: {}}}},
                "vars": {
                    "ansible_connection": "community.docker.docker_api",
                    "ansible_docker_docker_host": os.environ["DOCKER_HOST"],
                    "ansible_python_interpreter": "/usr/bin/python3",
                    "director_vip_interface": "bench0",
                    "director_vip_prefix": 32,
                },
            }
        }
        (self.workdir / "inventory.json").write_text(json.dumps(inventory))
        self.env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"),
            "ANSIBLE_CALLBACK_PLUGINS": str(PROJECT / "bench" / "callback_plugins"),
            # profile_tasks: each task's time at the end of the playbook's output (role-N.log)
            "ANSIBLE_CALLBACKS_ENABLED": "lvs_bench_metrics,ansible.posix.profile_tasks",
            "ANSIBLE_NOCOLOR": "1",
        }

    def converge(self, count):
        """ansible-playbook of the role with COUNT services: (wall seconds, the ipvs_table record)."""
        wanted = self.workdir / f"services-{count}.json"
        if not wanted.exists():
            wanted.write_text(json.dumps({"director_services": services(count)}))
        metrics = self.workdir / "metrics.jsonl"
        metrics.unlink(missing_ok=True)
        playbook = Path(sys.executable).parent / "ansible-playbook"
        argv = [str(playbook), "-i", str(self.workdir / "inventory.json"), "-e", f"@{wanted}", str(self.workdir / "play.yml")]
        started = time.perf_counter()
        proc = subprocess.run(argv, env={**self.env, "LVS_BENCH_METRICS": str(metrics)}, cwd=PROJECT, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        (self.out / f"role-{count}.log").write_text(proc.stdout)
        if proc.returncode:
            raise SystemExit(f"the role failed with {count} services:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
        [record] = [json.loads(line) for line in metrics.read_text().splitlines()]
        return wall, record


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="250,1000", help="numbers of services, each with 10 real servers (default 250,1000)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each size (the table shows medians; default 3)")
    parser.add_argument("--out", default="build/bench", help="where role.md and role.json go, under the project (default build/bench)")
    parser.add_argument("--keep", action="store_true", help="leave the container running afterwards")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if "DOCKER_HOST" not in os.environ:
        parser.error('DOCKER_HOST is not set: eval "$(scripts/lab env)" (bench/run does)')
    out = PROJECT / args.out
    out.mkdir(parents=True, exist_ok=True)
    results = []
    say(f"starting {CONTAINER} on the lab's engine")
    try:
        start_container()
        with tempfile.TemporaryDirectory(prefix="lvs-bench-role-") as workdir:
            run = Run(workdir, out)
            say("first converge (not timed): what the role installs")
            run.converge(sizes[0])
            for count in sizes:
                samples = {"playbook": [], "task": [], "module": [], "role": []}
                for n in range(1, args.runs + 1):
                    docker("exec", CONTAINER, "ipvsadm", "-C")
                    wall, record = run.converge(count)
                    entries = record["summary"]
                    task, module = record["seconds"], record["metrics"]["total_seconds"]
                    for key, value in (("playbook", wall), ("task", task), ("module", module), ("role", wall - task)):
                        samples[key].append(value)
                    say(
                        f"{count} services run {n}/{args.runs}: playbook {wall:.1f}s, ipvs_table task {task:.1f}s "
                        f"(module {module:.1f}s), role's own {wall - task:.1f}s; {entries}"
                    )
                medians = {k: statistics.median(v) for k, v in samples.items()}
                results.append({"services": count, "entries": count * (1 + REALS), "runs": args.runs, "samples": samples, "medians": medians})
                (out / "role.json").write_text(json.dumps(results, indent=1))
    finally:
        if not args.keep:
            subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True, check=False)
    lines = [
        "| services x 10 real servers | entries | ansible-playbook | ipvs_table task | module (its own time) | role's own (playbook - task) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r["medians"]
        lines.append(f"| {r['services']:,} | {r['entries']:,} | {m['playbook']:.1f} s | {m['task']:.1f} s | {m['module']:.1f} s | {m['role']:.1f} s |")
    lines += ["", f"Medians of {args.runs} runs, each from an empty IPVS table."]
    if len(results) >= 2:
        small, big = results[0], results[-1]
        growth = big["medians"]["role"] / small["medians"]["role"]
        size = big["entries"] / small["entries"]
        per_entry = (big["medians"]["role"] - small["medians"]["role"]) / (big["entries"] - small["entries"]) * 1000
        lines.append(
            f"The role's own cost grows {growth:.2f}x for {size:.0f}x the entries ({small['services']:,} -> {big['services']:,} services): "
            f"a fixed part plus {per_entry:.2f} s per 1,000 entries (no more than linear when the first ratio is at most {size:.0f})."
        )
    report = "\n".join(lines)
    (out / "role.md").write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
