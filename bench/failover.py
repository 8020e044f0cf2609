"""The keepalived pair under load (bench/run failover): molecule/ha's containers, converged by
bench/run with the role's defaults (and again with each --advert), then per advert interval:

  1. load: the client sends requests to the VIP at --rate per second, each on a new connection
     with a --timeout; a long download through the VIP (--transfer-mb at --transfer-rate) starts too;
  2. the master's container is killed (`docker kill`, no goodbye from keepalived). The failover
     is the span from the first failed request to the first answered one after it;
  3. the long download must complete with every byte;
  4. (first interval only) a real server's web server is killed (SIGKILL, no restart): how long
     it stays in the new master's table (both clocks are the lab guest's: the kill's time inside
     the real server, the table's inside the director), and whether any request fails once it
     is out.

The master comes back afterwards (`docker start`), and the web server too. Writes
build/bench/failover.json: the default interval's figures at the top (failover_seconds,
failed_requests_during_failover, long_transfer_survived, realserver_detect_seconds,
failed_after_detection), every interval's under "runs", and the settings used.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import LOAD  # noqa: E402  (the client's request loop, shared with bench/load.py)

PROJECT = Path(__file__).resolve().parents[1]
DIRECTORS, REALS, CLIENT = ("mol-ha-d1", "mol-ha-d2"), ("mol-ha-rs1", "mol-ha-rs2"), "mol-ha-client"
VIP = "172.25.11.100"
STOP_FILE = "/tmp/lvs-bench-failover-stop"
BIG = "/var/www/html/failover.bin"
STARTED = time.monotonic()


def say(text):
    print(f"[failover {time.monotonic() - STARTED:5.0f}s] {text}", file=sys.stderr, flush=True)


def docker(*argv, check=True):
    return subprocess.run(["docker", *argv], check=check, capture_output=True, text=True).stdout


def sh(container, command, check=True):
    return docker("exec", container, "sh", "-c", command, check=check)


def holders():
    return [d for d in DIRECTORS if f"inet {VIP}/" in sh(d, "ip -4 -o addr show", check=False)]


def wait(what, predicate, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise SystemExit(f"failover: {what}: not within {timeout}s")


def start_load(rate, timeout, seconds):
    sh(CLIENT, f"rm -f {STOP_FILE}")
    proc = subprocess.Popen(
        ["docker", "exec", "-i", CLIENT, "python3", "-", VIP, "80", str(rate), str(seconds), STOP_FILE, str(timeout)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    proc.stdin.write(LOAD)
    proc.stdin.close()
    return proc


def stop_load(proc):
    """The load's results: (start time, outcome) of every request."""
    docker("exec", CLIENT, "touch", STOP_FILE)
    proc.wait(timeout=120)
    return [tuple(r) for r in json.loads(proc.stdout.read())["results"]]


def outage(results, after):
    """The failed requests started after AFTER, and the outage: from the first of them to the
    first answered request after the last of them (0 when none failed)."""
    failed = [(t, o) for t, o in results if t >= after and not o.startswith("mol-ha-rs")]
    if not failed:
        return [], 0.0, None
    answered = [t for t, o in results if t > failed[-1][0] and o.startswith("mol-ha-rs")]
    end = answered[0] if answered else results[-1][0]
    return failed, round(end - failed[0][0], 2), end


def one_run(advert, args, detect):
    master, backup = holders()[0], [d for d in DIRECTORS if d not in holders()][0]
    say(f"advert_int {advert}: {master} is the master; load at {args.rate}/s, {args.timeout}s timeout")
    load = start_load(args.rate, args.timeout, args.max_seconds)
    size = args.transfer_mb * 1_000_000
    # Its end, in the client's clock, shows it went on through the backup after the failover.
    curl = (
        f"curl -sS --noproxy '*' --limit-rate {args.transfer_rate} -o /dev/null -w '%{{http_code}} %{{size_download}} ' http://{VIP}/failover.bin; date +%s.%N"
    )
    transfer = subprocess.Popen(["docker", "exec", CLIENT, "sh", "-c", curl], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(args.pause)
    killed_at = float(sh(CLIENT, "date +%s.%N"))
    docker("kill", master)
    say(f"killed {master}; waiting for {backup} to hold the VIP")
    wait(f"{backup} takes the VIP", lambda: holders() == [backup], timeout=60)
    out, err = transfer.communicate(timeout=args.transfer_mb * 5 + 120)
    code, got, ended = (out.split() + ["", "0", "0"])[:3]
    survived = transfer.returncode == 0 and code == "200" and int(got) == size
    say(f"long transfer: exit {transfer.returncode}, HTTP {code}, {got} of {size} bytes{' ' + err.strip() if err.strip() else ''}")
    run = {"advert_int": advert, "long_transfer_survived": survived, "long_transfer_bytes": int(got)}
    detect_at = web_killed_at = None
    if detect:
        victim = REALS[0]
        address = sh(victim, "ip -4 -o addr show eth0").split()[3].split("/")[0]
        # Debian's apache2.service restarts a web server killed by a signal: not for this test.
        sh(
            victim,
            "mkdir -p /run/systemd/system/apache2.service.d && printf '[Service]\\nRestart=no\\n' "
            ">/run/systemd/system/apache2.service.d/bench.conf && systemctl daemon-reload",
        )
        poll = subprocess.Popen(
            ["docker", "exec", backup, "sh", "-c", f"while ipvsadm -Ln | grep -q ' {address}:80 '; do sleep 0.1; done; date +%s.%N"],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1)
        web_killed_at = float(sh(victim, "date +%s.%N; systemctl kill -s KILL apache2").split()[0])
        detect_at = float(poll.communicate(timeout=120)[0])
        run["realserver_detect_seconds"] = round(detect_at - web_killed_at, 2)
        say(f"{victim}'s web server killed; out of {backup}'s table after {run['realserver_detect_seconds']}s")
        time.sleep(args.pause)
    results = stop_load(load)
    # The failover's failures: from a second before the kill (a request's timeout) to the web server's kill.
    failed, span, back_at = outage([r for r in results if web_killed_at is None or r[0] < web_killed_at - 1], killed_at - 1)
    kinds = sorted({failure[1] for failure in failed})
    run.update(failover_seconds=span, failed_requests_during_failover=len(failed), requests=len(results), failure_kinds=kinds)
    if failed:
        run["first_failure_after_kill_seconds"] = round(failed[0][0] - killed_at, 2)
    if back_at is not None:
        # Positive: the download was still running when requests through the backup began.
        run["long_transfer_ended_after_failover_seconds"] = round(float(ended) - back_at, 2)
    if detect_at is not None:
        after = [outcome for started, outcome in results if started >= detect_at]
        failed_after = [outcome for outcome in after if not outcome.startswith("mol-ha-rs")]
        run.update(failed_after_detection=len(failed_after), requests_after_detection=len(after))
        sh(REALS[0], "rm -f /run/systemd/system/apache2.service.d/bench.conf && systemctl daemon-reload && systemctl start apache2")
    say(f"failover {span}s, {len(failed)} of {len(results)} requests failed around it")
    docker("start", master)
    wait(f"{master} is back and holds the VIP", lambda: holders() == [master])
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--advert", required=True, help="the advert interval the pair was converged with")
    parser.add_argument("--rate", type=float, default=20, help="requests per second (default 20)")
    parser.add_argument("--timeout", type=float, default=1, help="each request's timeout in seconds (default 1)")
    parser.add_argument("--transfer-mb", type=int, default=20, help="the long download, in MB (default 20)")
    parser.add_argument("--transfer-rate", default="500K", help="its rate limit, curl's --limit-rate (default 500K: about 40 s)")
    parser.add_argument("--pause", type=float, default=5, help="seconds of load before the kill and after the detection (default 5)")
    parser.add_argument("--max-seconds", type=float, default=300, help="the load stops after this in any case (default 300)")
    parser.add_argument("--detect", action="store_true", help="also kill a real server's web server")
    parser.add_argument("--out", default=str(PROJECT / "build" / "bench" / "failover.json"))
    args = parser.parse_args()
    for rs in REALS:
        sh(rs, f"test -s {BIG} || head -c {args.transfer_mb * 1_000_000} /dev/zero >{BIG}")
    wait("one director holds the VIP", lambda: len(holders()) == 1)
    run = one_run(float(args.advert), args, args.detect)
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.exists() and not args.detect else {}
    report.setdefault("runs", []).append(run)
    if args.detect:
        report.update({k: v for k, v in run.items() if k != "advert_int"})
        report["settings"] = {
            "advert_int": run["advert_int"],
            "check": "HTTP GET / every 2 s (delay_loop 2, connect_timeout 1, retry 1, delay_before_retry 1)",
            "load": f"{args.rate} requests/s from the client, each a new connection with a {args.timeout} s timeout",
            "long_transfer": f"{args.transfer_mb} MB, curl --limit-rate {args.transfer_rate}, started {args.pause} s before the kill",
            "kill": "docker kill of the master's container; systemctl kill -s KILL of the web server, no restart",
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    say(f"wrote {out}")
    return 0 if run["long_transfer_survived"] else 1


if __name__ == "__main__":
    sys.exit(main())
