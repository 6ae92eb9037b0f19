#!/usr/bin/env python3
"""Echo flood of non-readers against GameServer's memory budget: CLIENTS
connections with the least receive buffer the kernel gives pipeline C_ECHO
packets of PAYLOAD bytes as fast as their sockets take them and never read,
so every echo is output the budget must cut. Samples the server's resident
memory every 20 ms and prints its peak over the base (RSS with the clients
connected and idle) against --max-memory; passes when that stays within the
budget plus --slack MiB (docs/PROTOCOL.md: "the server's resident memory
stays within the budget plus a fixed base, whatever the clients do"). Then
closes them all and checks the other half of that paragraph: within 10 s,
resident memory within 10 MiB of what it was before they came. Loopback
only.

  scripts/echo_flood.py                               # io_uring, 32 MiB
  scripts/echo_flood.py --backend epoll --payload 4092
  scripts/echo_flood.py --budget-mib 128 --seconds 4
  scripts/echo_flood.py --threads 8             # workers (default: per core)

Builds nothing: it runs build/release/apps/GameServer (scripts/run.sh or
scripts/test.sh --quick build it). docs/SOAK.md, "An echo flood".
"""
import argparse
import os
import re
import select
import socket
import struct
import subprocess
import sys
import time

C_ECHO = 1
MIB = 1 << 20


def resident(pid):
    """(VmRSS, VmHWM) of `pid` in bytes."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value
    return (int(fields["VmRSS"].split()[0]) * 1024,
            int(fields["VmHWM"].split()[0]) * 1024)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="uring")
    parser.add_argument("--budget-mib", type=int, default=32)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--payload", type=int, default=65000)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--slack", type=float, default=16,
                        help="MiB allowed over the budget (default 16)")
    parser.add_argument("--threads", type=int, default=0,
                        help="GameServer's workers (default 0: one per core)")
    parser.add_argument("--server",
                        default=os.path.join(root, "build/release/apps/GameServer"))
    args = parser.parse_args()
    budget = args.budget_mib * MIB

    server = subprocess.Popen(
        [args.server, "--host", "127.0.0.1", "--port", "0",
         "--backend", args.backend, "--max-memory", str(budget),
         "--max-pending", str(1 << 30), "--max-packet", "65535",
         "--idle-timeout", "0", "--stats-interval", "0",
         "--threads", str(args.threads)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = None
        for line in server.stdout:
            match = re.match(r"listening on .*:(\d+)$", line.strip())
            if match:
                port = int(match.group(1))
                break
        if port is None:
            sys.exit("echo_flood: GameServer did not start")
        time.sleep(1)
        before = resident(server.pid)[0]

        clients = []
        for _ in range(args.clients):
            client = socket.socket()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
            client.connect(("127.0.0.1", port))
            client.setblocking(False)
            clients.append(client)
        time.sleep(1)
        base = resident(server.pid)[0]

        packet = struct.pack("<HH", args.payload + 4, C_ECHO) + b"e" * args.payload
        stream = packet * 4
        offset = {client: 0 for client in clients}
        peak = base
        start = time.monotonic()
        next_sample = start
        while offset and time.monotonic() - start < args.seconds:
            _, writable, _ = select.select([], list(offset), [], 0.02)
            for client in writable:
                try:
                    sent = client.send(stream[offset[client]:])
                    offset[client] = (offset[client] + sent) % len(stream)
                except OSError:  # cut by the budget
                    del offset[client]
                    client.close()
            if time.monotonic() >= next_sample:
                peak = max(peak, resident(server.pid)[0])
                next_sample = time.monotonic() + 0.02
        peak = max(peak, resident(server.pid)[1])  # the kernel's high-water
        for client in clients:
            client.close()
        # When it first came back within 10 MiB, and where it was 10 s on.
        closed = time.monotonic()
        back = None
        while time.monotonic() - closed < 10:
            after = resident(server.pid)[0]
            if back is None and after <= before + 10 * MIB:
                back = time.monotonic() - closed
            time.sleep(0.1)
        after = resident(server.pid)[0]
    finally:
        server.terminate()
        server.wait()

    over = (peak - base) / MIB
    returned = back is not None and after <= before + 10 * MIB
    ok = over <= args.budget_mib + args.slack and returned
    print(f"echo flood, {args.backend}, {args.clients} clients x "
          f"{args.payload} B: peak {over:.1f} MiB over the base "
          f"({base / MIB:.1f} MiB) against a {args.budget_mib} MiB budget "
          f"(+{args.slack:.0f} allowed), {len(clients) - len(offset)} of "
          f"{len(clients)} cut; 10 s after the close "
          f"{(after - before) / MIB:+.1f} MiB against before they came "
          f"({before / MIB:.1f} MiB), within 10 MiB after "
          f"{'never' if back is None else f'{back:.1f} s'}: "
          f"{'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
