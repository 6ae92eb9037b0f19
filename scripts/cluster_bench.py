#!/usr/bin/env python3
"""Hop latency probe for scripts/cluster_bench.sh: one session on SENDER_PORT
and one on RECEIVER_PORT join a room of their own; the sender chats RATE times
a second for SECONDS with its send time inside; the receiver prints the p50
and p99 of send-to-receive time (same machine clock), in microseconds, as
`probe p50_us P p99_us P count N`."""
import socket
import struct
import sys
import threading
import time

ROOM = 999_999


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    return s


def send(s, pid, payload):
    s.sendall(struct.pack("<HH", 4 + len(payload), pid) + payload)


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return out


def recv(s):
    size, pid = struct.unpack("<HH", recv_exact(s, 4))
    return pid, recv_exact(s, size - 4)


def join(s):
    send(s, 3, struct.pack("<I", ROOM))
    while True:
        pid, payload = recv(s)
        if pid == 4:
            return struct.unpack("<II", payload)[1]


def main():
    sender_port, receiver_port, rate, seconds = (
        int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]),
        float(sys.argv[4]))
    tx, rx = connect(sender_port), connect(receiver_port)
    join(tx)
    join(rx)
    deadline = time.time() + 10
    while join(rx) < 2 and time.time() < deadline:
        time.sleep(0.05)
    count = int(rate * seconds)
    latencies = []

    def drain_sender():  # its own copies
        try:
            for _ in range(count):
                recv(tx)
        except (EOFError, OSError):
            pass

    threading.Thread(target=drain_sender, daemon=True).start()

    def receive():
        try:
            while len(latencies) < count:
                pid, payload = recv(rx)
                if pid == 6 and len(payload) == 16:
                    sent_ns = struct.unpack("<Q", payload[8:])[0]
                    latencies.append((time.time_ns() - sent_ns) / 1000)
        except (EOFError, OSError):
            pass

    reader = threading.Thread(target=receive)
    reader.start()
    for i in range(count):
        send(tx, 5, struct.pack("<Q", time.time_ns()))
        time.sleep(1 / rate)
    reader.join(timeout=5)
    latencies.sort()
    if not latencies:
        print("probe p50_us 0 p99_us 0 count 0")
        return
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f"probe p50_us {p(0.5):.0f} p99_us {p(0.99):.0f} "
          f"count {len(latencies)}")


if __name__ == "__main__":
    main()
