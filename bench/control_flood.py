#!/usr/bin/env python3
"""The control channel under a flood of idle connections (issue 15).

Starts `vncap serve` on loopback, optionally lowers its open-file limit
(like `ulimit -n`), opens N idle TCP connections to its control port from
127.0.0.2, times Ganeti Web Manager's request from 127.0.0.1 during the
flood, then closes the flood and measures again. Prints the daemon's RSS
before, during and after, and how long GWM waited. Loopback only, bounded:
N connections, one request during and one after, then the daemon is
stopped.

    bench/control_flood.py target/debug/vncap 20000
    bench/control_flood.py target/debug/vncap 1100 --nofile 1024
    bench/control_flood.py target/debug/vncap 20000 -- --max-control-connections 1000000 \
        --max-control-connections-per-ip 1000000     # the caps lifted: as before them
"""

import argparse
import json
import resource
import socket
import subprocess
import sys
import time

GWM = b'{"daddr": "127.0.0.1", "dport": 5999, "password": "Ab3dE6gH9jK2", "ws": true, "tls": false}\r\n'


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def fds(pid):
    import os

    return len(os.listdir(f"/proc/{pid}/fd"))


def gwm(control):
    """GWM's request from 127.0.0.1: seconds until the reply, and the reply."""
    s = socket.socket()
    s.settimeout(60)
    s.bind(("127.0.0.1", 0))
    t = time.monotonic()
    s.connect(control)
    s.sendall(GWM)
    reply = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        reply += b
    s.close()
    return time.monotonic() - t, reply.decode(errors="replace").strip()


def hold(k, source, host, port):
    """Helper: opens `k` idle connections, says `held`, keeps them until stdin closes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks = []
    for _ in range(k):
        s = socket.socket()
        s.bind((source, 0))
        s.setblocking(False)
        try:
            s.connect((host, port))
        except BlockingIOError:
            pass
        socks.append(s)
    print("held", flush=True)
    sys.stdin.read()


def main():
    if sys.argv[1:2] == ["--hold"]:
        return hold(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]))
    ap = argparse.ArgumentParser()
    ap.add_argument("vncap")
    ap.add_argument("n", type=int)
    ap.add_argument("--nofile", type=int, help="the daemon's open-file limit (soft and hard)")
    ap.add_argument("--source", default="127.0.0.2")
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    a = ap.parse_args(argv)
    a.extra = extra  # more `vncap serve` options, after --
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(hard, min(a.n, 10000) + 256)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))  # root may raise the hard limit
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    control = None
    d = subprocess.Popen(
        [a.vncap, "serve", "--control", "127.0.0.1:0", "--listen", "127.0.0.1",
         "--ports", "39000-39007", *a.extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        run(a, d)
    finally:
        if d.poll() is None:
            d.kill()


def run(a, d):
    control = None
    for line in d.stderr:
        if "ready: control on " in line:
            addr = line.split("control on ")[1].split(",")[0]
            host, port = addr.rsplit(":", 1)
            control = (host, int(port))
            break
    # Drain the log (warnings of the flood) so the daemon never blocks on it.
    import threading

    log = []
    threading.Thread(target=lambda: [log.append(l) for l in d.stderr], daemon=True).start()
    if a.nofile:
        subprocess.run(["prlimit", "--pid", str(d.pid), f"--nofile={a.nofile}:{a.nofile}"], check=True)
    gwm(control)  # warm up
    before, _ = rss_kib(d.pid)
    fd_before = fds(d.pid)
    # The flood, from helper processes of at most 10,000 sockets each (a
    # process's own open-file limit is often 20,000 or less).
    t = time.monotonic()
    holders = []
    left = a.n
    while left > 0:
        k = min(left, 10000)
        left -= k
        h = subprocess.Popen([sys.executable, __file__, "--hold", str(k), a.source, control[0], str(control[1])],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        holders.append(h)
    for h in holders:
        assert h.stdout.readline().strip() == "held"
    opened = time.monotonic() - t
    waited, reply = gwm(control)
    during, peak = rss_kib(d.pid)
    fd_during = fds(d.pid)
    for h in holders:
        h.stdin.close()
        h.wait()
    time.sleep(12)  # the flood's deadlines (silence 3 s, request 10 s) pass
    after, peak = rss_kib(d.pid)
    fd_after = fds(d.pid)
    waited_after, reply_after = gwm(control)
    d.terminate()
    d.wait(timeout=30)
    refused_lines = sum(1 for l in log if "closed unread" in l)
    print(json.dumps({
        "connections": a.n, "source": a.source, "nofile": a.nofile, "extra": a.extra,
        "opened_in_s": round(opened, 2),
        "rss_kib": {"before": before, "during": during, "after": after, "peak": peak},
        "fds": {"before": fd_before, "during": fd_during, "after": fd_after},
        "gwm_during": {"ms": round(waited * 1000, 1), "reply": reply},
        "gwm_after": {"ms": round(waited_after * 1000, 1), "reply": reply_after},
        "log_lines": len(log), "closed_unread_lines": refused_lines,
    }, indent=1))


if __name__ == "__main__":
    sys.exit(main())
