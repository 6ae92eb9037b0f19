#!/usr/bin/env python3
"""Join floods against GameServer: CLIENTS clients each pipeline JOINS
C_JOINs in one stream (to one room, or each to a fresh room) and read every
S_JOIN back. Prints how long all took and the server's peak resident memory
(sampled every 100 ms), against --max-memory 64 MiB. Loopback only.

  scripts/join_flood.py                      # 1 client, 1,000,000 fresh rooms
  scripts/join_flood.py --clients 40 --joins 50000
  scripts/join_flood.py --same-room --joins 200000 --backend epoll

Builds nothing: it runs build/release/apps/GameServer (scripts/run.sh or
scripts/test.sh --quick build it). docs/BENCHMARKS.md, "Join floods".
"""
import argparse
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

C_JOIN, S_JOIN = 3, 4


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--joins", type=int, default=1_000_000)
    parser.add_argument("--same-room", action="store_true")
    parser.add_argument("--backend", default="auto")
    parser.add_argument(
        "--server", default=os.path.join(root, "build/release/apps/GameServer"))
    args = parser.parse_args()
    if not args.same_room and args.clients * args.joins >= 1 << 32:
        sys.exit("--clients x --joins fresh rooms must stay below 2^32")

    server = subprocess.Popen(
        [args.server, "--host", "127.0.0.1", "--port", "0", "--threads", "2",
         "--backend", args.backend, "--max-memory", str(64 << 20),
         "--stats-interval", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port = None
        for line in server.stdout:
            m = re.match(r"listening on .*:(\d+)$", line.strip())
            if m:
                port = int(m.group(1))
                break
        if port is None:
            sys.exit("GameServer did not start")

        def rss_mib():
            with open(f"/proc/{server.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) // 1024
            return 0

        base = rss_mib()
        answered = [0] * args.clients

        def client(k):
            s = socket.create_connection(("127.0.0.1", port))
            # Fresh rooms: client k takes rooms 1 + k * joins and up.
            first = 5 if args.same_room else 1 + k * args.joins
            data = b"".join(
                struct.pack("<HHI", 8, C_JOIN,
                            first if args.same_room else first + i)
                for i in range(args.joins))
            threading.Thread(target=s.sendall, args=(data,),
                             daemon=True).start()
            buf = bytearray()
            while answered[k] < args.joins:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
                at = 0
                while len(buf) - at >= 4:
                    size, pid = struct.unpack_from("<HH", buf, at)
                    if len(buf) - at < size:
                        break
                    answered[k] += pid == S_JOIN
                    at += size
                del buf[:at]
            s.close()

        threads = [threading.Thread(target=client, args=(k,), daemon=True)
                   for k in range(args.clients)]
        start = time.monotonic()
        peak = base
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads) and \
                time.monotonic() - start < 300:
            time.sleep(0.1)
            peak = max(peak, rss_mib())
        took = time.monotonic() - start
        total = sum(answered)
        print(f"{args.clients} client(s) x {args.joins} joins "
              f"({'one room' if args.same_room else 'fresh rooms'}): "
              f"{total} S_JOINs in {took:.1f} s, server RSS peak {peak} MiB "
              f"(at start {base} MiB, --max-memory 64 MiB)")
        return 0 if total == args.clients * args.joins else 1
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
