"""The IPVS table benchmark; bench/run starts it inside the lab's IPVS-capable host.

Every case is run against three ways of doing the same job, in one network namespace of its own
(lvs-bench), each run starting from the case's table as ipvsadm-restore leaves it:

  A  lvs.dr.ipvs_table, one task through ansible-playbook (state overridden): the playbook's wall
     time, and the module's own figures (metrics: its total run time, read, plan and apply,
     netlink writes, peak RSS);
  B  ipvsadm-restore of the wanted table as a rules file, after ipvsadm -C when the table is not
     empty (what the ipvsadm service does): the kernel-bound baseline;
  C  one ipvsadm process per entry (-A/-a for new entries, -E/-e for existing ones, -d for those
     to remove), as a pasted script or one task per entry does; timed on the first --sample
     calls and extrapolated to all of them.

Also timed: ipvsadm -Sn on the case's starting table (the read that A's read and plan are
compared with). Prints a markdown table of medians and ratios to B; it and the JSON of every run
go to build/bench/ (table.md, table.json).
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
NS = "lvs-bench"
PLAY = """- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Converge the whole IPVS table in one task
      lvs.dr.ipvs_table:
        services: "{{ bench_services }}"
        state: overridden
"""
STARTED = time.monotonic()


def say(text):
    print(f"[bench {time.monotonic() - STARTED:5.0f}s] {text}", file=sys.stderr, flush=True)


# --- the tables (addresses in 198.18.0.0/15, the benchmarking range; no packet is sent) ---------


def address(base, n):
    return f"198.{base + (n >> 16)}.{(n >> 8) & 255}.{n & 255}"


def table(services, reals):
    """SERVICES virtual services 198.18.x.y:80 (wlc), each with REALS real servers 198.19.x.y:80 (DR)."""
    return [
        {"address": address(18, i), "port": 80, "scheduler": "wlc", "reals": [{"address": address(19, i * reals + j), "weight": 1} for j in range(reals)]}
        for i in range(services)
    ]


def one_weight_changed(services):
    out = json.loads(json.dumps(services))
    out[len(out) // 2]["reals"][len(out[0]["reals"]) // 2]["weight"] = 2
    return out


def tenth_replaced(services):
    """Each service's first real server replaced by a new one (10% of them with 10 per service)."""
    out = json.loads(json.dumps(services))
    for i, service in enumerate(out):
        service["reals"][0] = {"address": f"198.18.{200 + (i >> 8)}.{i & 255}", "weight": 1}
    return out


def rules(services):
    """The table in ipvsadm-save's format (ipvsadm -Sn prints the same lines)."""
    lines = []
    for s in services:
        vip = f"{s['address']}:{s['port']}"
        lines.append(f"-A -t {vip} -s {s['scheduler']}")
        lines += [f"-a -t {vip} -r {r['address']}:{s['port']} -g -w {r['weight']}" for r in s["reals"]]
    return lines


def per_entry_commands(start, wanted):
    """C's ipvsadm argv lists taking START to WANTED, one per entry."""
    before = {(s["address"], s["port"]): {r["address"]: r for r in s["reals"]} for s in start}
    commands = []
    for s in wanted:
        vip = f"{s['address']}:{s['port']}"
        old = before.get((s["address"], s["port"]))
        commands.append(["-E" if old is not None else "-A", "-t", vip, "-s", s["scheduler"]])
        listed = {r["address"] for r in s["reals"]}
        commands += [["-d", "-t", vip, "-r", f"{a}:{s['port']}"] for a in (old or {}) if a not in listed]
        commands += [
            ["-e" if old and r["address"] in old else "-a", "-t", vip, "-r", f"{r['address']}:{s['port']}", "-g", "-w", str(r["weight"])] for r in s["reals"]
        ]
    return commands


# number: (title, make(scale) -> (starting table, wanted table))
CASES = {
    1: ("empty -> 1,000 services x 10 real servers", lambda k: ([], table(1000 // k, 10))),
    2: ("the same again, nothing to do", lambda k: (table(1000 // k, 10), table(1000 // k, 10))),
    3: ("one weight changed", lambda k: (table(1000 // k, 10), one_weight_changed(table(1000 // k, 10)))),
    4: ("10% of real servers replaced", lambda k: (table(1000 // k, 10), tenth_replaced(table(1000 // k, 10)))),
    5: ("empty -> 10,000 services x 5 real servers", lambda k: ([], table(10000 // k, 5))),
}


# --- running things in the namespace -----------------------------------------------------------


def in_ns(argv, **kwargs):
    return subprocess.run(["ip", "netns", "exec", NS, *argv], check=True, **kwargs)


def timed(argv, **kwargs):
    started = time.perf_counter()
    in_ns(argv, **kwargs)
    return time.perf_counter() - started


def restore(path):
    """The table as the case starts: cleared, then restored from PATH (if given). Not timed."""
    in_ns(["ipvsadm", "-C"])
    if path:
        with open(path) as rules_file:
            in_ns(["ipvsadm-restore"], stdin=rules_file)


def saved_table():
    return sorted(in_ns(["ipvsadm", "-Sn"], capture_output=True, text=True).stdout.splitlines())


class Bench:
    def __init__(self, workdir, sample):
        self.workdir = Path(workdir)
        self.sample = sample
        root = self.workdir / "collections" / "ansible_collections" / "lvs"
        root.mkdir(parents=True)
        (root / "dr").symlink_to(PROJECT)
        (self.workdir / "play.yml").write_text(PLAY)
        self.env = {
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(self.workdir / "collections"),
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "ANSIBLE_CALLBACK_PLUGINS": str(PROJECT / "bench" / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "lvs_bench_metrics",
            "ANSIBLE_NOCOLOR": "1",
        }

    def write(self, name, content):
        path = self.workdir / name
        path.write_text(content)
        return path

    def way_a(self, start_rules, wanted_vars):
        restore(start_rules)
        metrics_file = self.workdir / "metrics.jsonl"
        metrics_file.unlink(missing_ok=True)
        started = time.perf_counter()
        proc = in_ns(
            [str(Path(sys.executable).parent / "ansible-playbook"), "-e", f"@{wanted_vars}", str(self.workdir / "play.yml")],
            env={**self.env, "LVS_BENCH_METRICS": str(metrics_file)},
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        [record] = [json.loads(line) for line in metrics_file.read_text().splitlines()]
        if record.get("failed"):
            raise SystemExit(f"A failed: {record['msg']}\n{proc.stdout[-2000:]}")
        return wall, record["metrics"]

    def way_b(self, start_rules, wanted_rules):
        restore(start_rules)
        with open(wanted_rules) as rules_file:
            started = time.perf_counter()
            if start_rules:
                in_ns(["ipvsadm", "-C"])
            in_ns(["ipvsadm-restore"], stdin=rules_file)
            return time.perf_counter() - started

    def way_c(self, start_rules, commands):
        restore(start_rules)
        sample = commands[: self.sample]
        started = time.perf_counter()
        for argv in sample:
            # -E/-e of an unchanged entry and -d succeed; nothing here should fail
            in_ns(["ipvsadm", *argv], stdout=subprocess.DEVNULL)
        per_call = (time.perf_counter() - started) / len(sample)
        return per_call * len(commands)

    def read_baseline(self, start_rules):
        restore(start_rules)
        return timed(["ipvsadm", "-Sn"], stdout=subprocess.DEVNULL)


def run_case(bench, number, runs, shrink):
    title, make = CASES[number]
    start, wanted = make(shrink)
    start_rules = bench.write(f"start-{number}.rules", "\n".join(rules(start)) + "\n") if start else None
    wanted_rules = bench.write(f"wanted-{number}.rules", "\n".join(rules(wanted)) + "\n")
    wanted_vars = bench.write(f"wanted-{number}.json", json.dumps({"bench_services": wanted}))
    commands = per_entry_commands(start, wanted)
    expected = sorted(rules(wanted))
    samples = {"a_playbook": [], "a_module": [], "a_read_plan": [], "a_apply": [], "b": [], "c": [], "read": [], "writes": [], "rss": []}
    for run in range(1, runs + 1):
        b = bench.way_b(start_rules, wanted_rules)
        assert saved_table() == expected, f"case {number}: ipvsadm-restore did not make the wanted table"
        wall, metrics = bench.way_a(start_rules, wanted_vars)
        assert saved_table() == expected, f"case {number}: ipvs_table did not make the wanted table"
        c = bench.way_c(start_rules, commands)
        read = bench.read_baseline(start_rules) if start else 0.0
        for key, value in (
            ("a_playbook", wall),
            ("a_module", metrics["total_seconds"]),
            ("a_read_plan", metrics["read_seconds"] + metrics["plan_seconds"]),
            ("a_apply", metrics["apply_seconds"]),
            ("b", b),
            ("c", c),
            ("read", read),
            ("writes", metrics["netlink_writes"]),
            ("rss", metrics["peak_rss_kib"]),
        ):
            samples[key].append(value)
        say(
            f"case {number} run {run}/{runs}: A playbook {wall:.2f}s module {metrics['total_seconds']:.2f}s "
            f"(read+plan {samples['a_read_plan'][-1]:.2f}s apply {metrics['apply_seconds']:.2f}s, {metrics['netlink_writes']} writes, "
            f"{metrics['peak_rss_kib'] // 1024} MiB); B {b:.2f}s; C {c:.1f}s (from {min(len(commands), bench.sample)} calls); -Sn {read:.2f}s"
        )
    medians = {k: statistics.median(v) for k, v in samples.items()}
    return {"case": number, "title": title, "entries": len(expected), "commands": len(commands), "runs": runs, "samples": samples, "medians": medians}


def markdown(results, sample):
    out = [
        "| case | entries | B: ipvsadm-restore | A: module (its own time) | A/B | A: ansible-playbook | playbook/B "
        "| C: ipvsadm per entry* | C/B | A read+plan | ipvsadm -Sn | A netlink writes | A peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r["medians"]
        read = f"{m['read']:.2f} s" if m["read"] else "-"
        out.append(
            f"| ({r['case']}) {r['title']} | {r['entries']:,} | {m['b']:.2f} s | {m['a_module']:.2f} s | {m['a_module'] / m['b']:.2f}x "
            f"| {m['a_playbook']:.2f} s | {m['a_playbook'] / m['b']:.2f}x | {m['c']:.0f} s | {m['c'] / m['b']:.0f}x "
            f"| {m['a_read_plan']:.2f} s | {read} | {int(m['writes'])} | {m['rss'] / 1024:.0f} MiB |"
        )
    out.append("")
    out.append(
        f"Medians of {results[0]['runs']} runs. *C: the mean of the first {sample} ipvsadm calls, times the number of calls "
        "(one per entry of the wanted table, plus one per removal)."
    )
    by_case = {r["case"]: r["medians"] for r in results}
    checks = []
    if 1 in by_case:
        ratio = by_case[1]["a_module"] / by_case[1]["b"]
        checks.append(f"| (1) module time / ipvsadm-restore | <= 1.5 | {ratio:.2f} | {'met' if ratio <= 1.5 else 'MISSED'} |")
    if 2 in by_case:
        m = by_case[2]
        ratio = m["a_read_plan"] / m["read"]
        checks.append(f"| (2) netlink writes | 0 | {int(m['writes'])} | {'met' if m['writes'] == 0 else 'MISSED'} |")
        checks.append(f"| (2) read + plan / ipvsadm -Sn | <= 2 | {ratio:.2f} | {'met' if ratio <= 2 else 'MISSED'} |")
    if 3 in by_case:
        m = by_case[3]
        checks.append(f"| (3) netlink writes | 1 | {int(m['writes'])} | {'met' if m['writes'] == 1 else 'MISSED'} |")
        if 2 in by_case:
            ratio = m["a_module"] / by_case[2]["a_module"]
            checks.append(f"| (3) module time / (2)'s | <= 2 | {ratio:.2f} | {'met' if ratio <= 2 else 'MISSED'} |")
    if checks:
        out += ["", "| target | wanted | measured | |", "|---|---|---|---|", *checks]
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each case (the table shows medians; default 5)")
    parser.add_argument("--cases", default="1,2,3,4,5", help="which cases, e.g. 1,2,3 (default all)")
    parser.add_argument("--sample", type=int, default=200, help="ipvsadm calls timed for C (default 200)")
    parser.add_argument("--shrink", type=int, default=1, help="divide the number of services by this, for a quick check (default 1)")
    parser.add_argument("--out", default="build/bench", help="where table.md and table.json go, under the project (default build/bench)")
    args = parser.parse_args()
    if min(args.runs, args.sample, args.shrink) < 1:
        parser.error("--runs, --sample and --shrink must be at least 1")
    cases = [int(c) for c in args.cases.split(",")]
    if not set(cases) <= set(CASES):
        parser.error(f"--cases: choose from {sorted(CASES)}")
    subprocess.run(["ip", "netns", "del", NS], stderr=subprocess.DEVNULL, check=False)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    # The kernel takes only real servers it has a unicast route to: one link on 198.18.0.0/15.
    for argv in (
        ["link", "set", "lo", "up"],
        ["link", "add", "bench0", "type", "dummy"],
        ["addr", "add", "198.19.255.254/15", "dev", "bench0"],
        ["link", "set", "bench0", "up"],
    ):
        subprocess.run(["ip", "-n", NS, *argv], check=True)
    results = []
    out = PROJECT / args.out
    out.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="lvs-bench-") as workdir:
            bench = Bench(workdir, args.sample)
            for number in cases:
                say(f"case {number}: {CASES[number][0]}")
                results.append(run_case(bench, number, args.runs, args.shrink))
                # after each case, so that a failure later keeps what was measured
                report = markdown(results, args.sample)
                if args.shrink > 1:
                    report = f"(a quick check: every table has 1/{args.shrink} of its services)\n\n{report}"
                (out / "table.json").write_text(json.dumps(results, indent=1))
                (out / "table.md").write_text(report + "\n")
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=False)
    print(report)


if __name__ == "__main__":
    main()
