"""The steady requests both drain.yml tests send from the client (tests/lab/test_drain_playbook.py
on the lab topology, molecule/ha/tests/test_drain.py on the pair): a script run in the client."""

# A request every 0.2 s until /tmp/lvs-drain-stop exists (at most SECONDS), each a new
# connection closed with a reset: [time, who answered or FAILED] of each, to /tmp/lvs-drain-load.json.
LOAD = """
import json, os, socket, struct, sys, time
vip, seconds = sys.argv[1], float(sys.argv[2])
seen = []
end = time.time() + seconds
while time.time() < end and not os.path.exists("/tmp/lvs-drain-stop"):
    started = time.time()
    try:
        s = socket.create_connection((vip, 80), timeout=3)
        s.sendall(b"GET / HTTP/1.0\\r\\nHost: lvs\\r\\n\\r\\n")
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        head, _, body = answer.partition(b"\\r\\n\\r\\n")
        seen.append([started, body.decode().strip() if head.startswith(b"HTTP/1.1 200") else "FAILED"])
    except OSError:
        seen.append([started, "FAILED"])
    time.sleep(0.2)
json.dump(seen, open("/tmp/lvs-drain-load.json", "w"))
"""
