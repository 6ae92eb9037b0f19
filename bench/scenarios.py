#!/usr/bin/env python3
"""End-to-end scenario runner: GameServer (io_uring and epoll) against the
Boost.Asio peer (one shared buffer per broadcast, its default, and
broadcasts copied into each receiver's output), all under DummyClient, on
loopback.

    scripts/bench.sh                      # builds, then runs this
    bench/scenarios.py --quick            # 3 s runs, 1 repetition
    bench/scenarios.py --scenarios S3,S4 --repeat 5

Method (docs/BENCHMARKS.md): each server runs with one worker thread pinned to
CPU 0 (taskset), DummyClient pinned to CPU 1. Every run warms up, then measures
for --seconds; the servers are alternated within each repetition, and each
figure is the median over repetitions. Per run it records delivered messages
per second (DummyClient's count), server and client CPU time over the measured
window, heap allocations per delivered message (LD_PRELOAD counter) and write
operations per message (the server's own summary line).
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "release"
GAME_SERVER = BUILD / "apps" / "GameServer"
DUMMY_CLIENT = BUILD / "apps" / "DummyClient"
ASIO_SERVER = BUILD / "bench" / "asio_game_server"
EPOLL_FLOOR = BUILD / "bench" / "epoll_echo_server"
URING_FLOOR = BUILD / "bench" / "uring_echo_server"
ALLOC_LIB = BUILD / "bench" / "liballoc_count.so"
TICKS = os.sysconf("SC_CLK_TCK")

SERVERS = {
    "gameserver-uring": [str(GAME_SERVER), "--backend", "uring"],
    "gameserver-epoll": [str(GAME_SERVER), "--backend", "epoll"],
    # One shared buffer per broadcast, gathered into each member's write
    # (the peer's default, a little ahead of the other), or copied into each
    # member's contiguous output.
    "asio": [str(ASIO_SERVER), "--broadcast", "shared"],
    "asio-copy": [str(ASIO_SERVER), "--broadcast", "copy"],
    # The floors of the echo scenarios: minimal C echo servers, on epoll and
    # on io_uring.
    "floor-epoll": [str(EPOLL_FLOOR)],
    "floor-uring": [str(URING_FLOOR)],
    # The epoll floor with no user-space copy at all (replies written from
    # the read buffer): the lower bound of S5 for any server on sockets.
    "floor-epoll-inplace": [str(EPOLL_FLOOR), "--in-place"],
    # The world's naive baseline: each receiver's snapshot encoded for it.
    "naive-uring": [str(GAME_SERVER), "--backend", "uring",
                    "--naive-snapshots"],
    "naive-epoll": [str(GAME_SERVER), "--backend", "epoll",
                    "--naive-snapshots"],
}
BASELINE = "asio"
# The world scenarios (W*) run GameServer only: the Asio peer has no world.
# Their ratio compares each backend with its naive variant.
WORLD_SERVERS = ("gameserver-uring", "naive-uring", "gameserver-epoll",
                 "naive-epoll")
# The floor servers answer C_ECHO only.
FLOOR_SERVERS = ("floor-epoll", "floor-uring", "floor-epoll-inplace")
FLOOR_SCENARIOS = ("S1", "S2", "S5", "S6", "S6t")
WORLD_BASELINE = {"gameserver-uring": "naive-uring",
                  "gameserver-epoll": "naive-epoll"}

SCENARIOS = {
    "S1": ("echo, 100 sessions, 64 B, depth 16",
           "--mode echo --sessions 100 --payload 64 --depth 16"),
    "S2": ("echo, 1,000 sessions, 64 B, depth 1",
           "--mode echo --sessions 1000 --payload 64 --depth 1"),
    "S3": ("chat, 100 sessions in room 0, 4 senders, 64 B, depth 16",
           "--mode chat --sessions 100 --senders 4 --payload 64 --depth 16"),
    # One sender keeping 64 chats in flight: as many as S3's 4 senders at 16.
    # "In flight" is DummyClient's closed loop: a chat leaves the window when
    # the sender gets its own copy back; the other 999 deliveries are not
    # waited for (a receiver the client reads late gets more than the depth
    # queued, and its writes carry more). The same for every server.
    "S4": ("chat, 1,000 sessions in room 0, 1 sender, 128 B, depth 64",
           "--mode chat --sessions 1000 --senders 1 --payload 128 --depth 64"),
    # The same at depth 16: no write can carry more than 16 messages.
    "S4s": ("S4 with 16 chats in flight",
            "--mode chat --sessions 1000 --senders 1 --payload 128 --depth 16"),
    "S5": ("echo, 10 sessions, 4 KiB packets, depth 8",
           "--mode echo --sessions 10 --payload 4092 --depth 8"),
    "S6": ("10,000 idle connections: server memory per connection", None),
    "S6t": ("10,000 connections that each echoed one 64 B packet, then idle: "
            "server memory per connection", None),
    # The world at 20 Hz: every session moves 10 times a second.
    "W1": ("world, 1,000 sessions in rooms of 100, 10 moves/s each, 20 Hz",
           "--mode move --sessions 1000 --room-size 100 --rate 10"),
    "W2": ("world, one room of 1,000 sessions, 10 moves/s each, 20 Hz",
           "--mode move --sessions 1000 --room-size 1000 --rate 10"),
    # W2's 10 million entity updates a second are more than DummyClient's
    # one core decodes and checks: at 2 moves/s its latency is the server's.
    "W2s": ("world, one room of 1,000 sessions, 2 moves/s each, 20 Hz",
            "--mode move --sessions 1000 --room-size 1000 --rate 2"),
}
ROOM_SIZES = (10, 100, 1000)


def cpu_seconds(pid):
    """utime + stime of a live process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def read_count(path):
    try:
        return int(Path(path).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def pinned(cpu, argv):
    return (["taskset", "-c", str(cpu)] if shutil.which("taskset") else []) + argv


class Server:
    """One server process: started on CPU 0, stopped with SIGTERM."""

    def __init__(self, name, extra=()):
        self.name = name
        self.echo = False  # an echo load: see stop()
        self.alloc_file = tempfile.mktemp(prefix="allocs-")
        env = dict(os.environ, ALLOC_COUNT_FILE=self.alloc_file,
                   LD_PRELOAD=str(ALLOC_LIB))
        argv = SERVERS[name] + ["--host", "127.0.0.1", "--port", "0",
                                "--threads", "1", "--stats-interval", "0",
                                "--max-pending", str(64 << 20), *extra]
        self.proc = subprocess.Popen(pinned(0, argv), env=env, text=True,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.port = None
        deadline = time.time() + 10
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            m = re.search(r"listening on .*:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            self.proc.kill()
            raise RuntimeError(f"{name} did not start")

    def snapshot(self):
        return cpu_seconds(self.proc.pid), read_count(self.alloc_file)

    def stop(self):
        """SIGTERM; returns (writes, messages out) from its summary line.

        Messages out: the packets it wrote, for chat (one send buffer per
        S_CHAT) the buffers it wrote; for echo, the packets it received,
        each answered once: GameServer gathers the echoes of one read into
        one send buffer, and its "packets out" counts buffers."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        # The Asio peer also prints write_somes: the sendmsg calls its
        # async_writes made (one async_write may take several), which is what
        # GameServer's "writes" counts.
        writes = (re.search(r"write_somes (\d+)", out)
                  or re.search(r"writes (\d+)", out))
        packets = re.search(r"packets in (\d+) out (\d+)", out)
        self.tick_late = re.search(
            r"\[world summary\].*tick late p50 ([\d.]+) p99 ([\d.]+)", out)
        try:
            os.unlink(self.alloc_file)
        except OSError:
            pass
        if not packets:
            return (int(writes.group(1)) if writes else 0, 0)
        packets_in, packets_out = int(packets.group(1)), int(packets.group(2))
        echo = self.echo
        return (int(writes.group(1)) if writes else 0,
                packets_in if echo else packets_out)


def run_load(server_name, client_args, warmup, seconds):
    server = Server(server_name)
    server.echo = "--mode echo" in client_args
    result = {"server": server_name}
    try:
        with tempfile.NamedTemporaryFile(suffix=".json") as js:
            argv = [str(DUMMY_CLIENT), "--port", str(server.port),
                    "--warmup", str(warmup), "--duration", str(seconds),
                    "--json", js.name, *client_args.split()]
            client = subprocess.Popen(pinned(1, argv), text=True,
                                      stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT)
            start = end = None
            for line in client.stdout:
                if line.startswith("[measure] start"):
                    start = (server.snapshot(), cpu_seconds(client.pid))
                elif line.startswith("[measure] end"):
                    end = (server.snapshot(), cpu_seconds(client.pid))
            code = client.wait()
            summary = json.loads(Path(js.name).read_text() or "{}")
        writes, packets_out = server.stop()
    except Exception:
        server.proc.kill()
        raise
    if start is None or end is None or not summary:
        raise RuntimeError(f"{server_name}: DummyClient did not measure")
    delivered = summary["packets_received"]
    window = summary["seconds"]
    (cpu0, alloc0), client0 = start
    (cpu1, alloc1), client1 = end
    result.update(
        ok=(code == 0),
        delivered_per_s=delivered / window,
        mb_per_s=summary["bytes_received"] / window / 1e6,
        server_cpu_us_per_msg=(cpu1 - cpu0) / max(delivered, 1) * 1e6,
        server_cpu_pct=(cpu1 - cpu0) / window * 100,
        client_cpu_pct=(client1 - client0) / window * 100,
        allocs_per_msg=(alloc1 - alloc0) / max(delivered, 1),
        writes_per_msg=writes / max(packets_out, 1),
        p99_us=summary["latency_us"]["p99"],
        p50_us=summary["latency_us"]["p50"],
    )
    errors = {k: v for k, v in summary.get("errors", {}).items() if v}
    if errors:
        result.update(errors=errors)
    world = summary.get("world")
    if world and world.get("entities"):
        # Per entity update a client received: the unit of the world's work.
        result.update(
            entity_updates_per_s=world["entities"] / window,
            snapshot_mb_per_s=world["snapshot_bytes"] / window / 1e6,
            server_cpu_ns_per_entity=(cpu1 - cpu0) / world["entities"] * 1e9,
        )
        if server.tick_late:
            result.update(tick_late_p99_ms=float(server.tick_late.group(2)))
    return result


def echo_once(sock, payload=b"x" * 64):
    """One C_ECHO (id 1) and its S_ECHO, on a blocking socket."""
    size = 4 + len(payload)
    sock.sendall(size.to_bytes(2, "little") + (1).to_bytes(2, "little")
                 + payload)
    want, got = size, b""
    while len(got) < want:
        chunk = sock.recv(want - len(got))
        if not chunk:
            raise RuntimeError("connection closed before its echo")
        got += chunk


def run_idle(server_name, connections, traffic=False):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    server = Server(server_name)
    socks = []
    try:
        time.sleep(0.5)
        before = rss_kib(server.proc.pid)
        for _ in range(connections):
            s = socket.create_connection(("127.0.0.1", server.port))
            socks.append(s)
            if traffic:
                echo_once(s)
        # Every accept completes, and GameServer's sweep (once a second)
        # twice finds the last sessions quiet and frees what they no longer
        # use: what remains is what an idle connection costs.
        time.sleep(3)
        after = rss_kib(server.proc.pid)
    finally:
        for s in socks:
            s.close()
        server.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return {"server": server_name, "ok": len(socks) == connections,
            "kib_per_connection": (after - before) / connections}


def median_of(runs, key):
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--idle", type=int, default=10000)
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="3 s runs, one repetition, 2,000 idle sockets")
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench"))
    parser.add_argument(
        "--server", action="append", default=[], metavar="NAME=COMMAND",
        help="another server to run, e.g. a build of an older commit: "
             "'before-uring=/tmp/GameServer --backend uring' (repeatable; "
             "name it in --servers too)")
    args = parser.parse_args()
    for spec in args.server:
        name, _, command = spec.partition("=")
        if not name or not command:
            parser.error(f"--server {spec!r}: expected NAME=COMMAND")
        SERVERS[name] = command.split()
    if args.quick:
        args.repeat, args.seconds, args.warmup, args.idle = 1, 3, 1, 2000
    servers = [s for s in args.servers.split(",") if s]
    unknown = [s for s in servers if s not in SERVERS]
    if unknown:
        parser.error(f"unknown server(s) {', '.join(unknown)}; known: "
                     f"{', '.join(SERVERS)}")
    scenarios = [s for s in args.scenarios.split(",") if s]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    runs = {}  # (scenario, server) -> [result]
    for rep in range(args.repeat):
        for sc in scenarios:
            pool = ([s for s in WORLD_SERVERS if s in servers]
                    if sc.startswith("W") else
                    [s for s in servers if s not in WORLD_SERVERS[1::2] and
                     (s not in FLOOR_SERVERS or sc in FLOOR_SCENARIOS)])
            order = pool[rep % len(pool):] + pool[:rep % len(pool)]
            for name in order:
                if sc in ("S6", "S6t"):
                    r = run_idle(name, args.idle, traffic=(sc == "S6t"))
                else:
                    r = run_load(name, SCENARIOS[sc][1], args.warmup,
                                 args.seconds)
                runs.setdefault((sc, name), []).append(r)
                print(f"[{rep + 1}/{args.repeat}] {sc} {name}: "
                      + ", ".join(f"{k}={v:.3g}" if isinstance(v, float)
                                  else f"{k}={v}" for k, v in r.items()
                                  if k != "server"), flush=True)

    lines = report(runs, scenarios, servers, args)
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(
        {f"{k[0]}/{k[1]}": v for k, v in runs.items()}, indent=1))
    print("\n".join(lines))
    if not args.no_plot:
        plot_room_sizes([s for s in servers
                         if s not in WORLD_SERVERS[1::2] and
                         s not in FLOOR_SERVERS],
                        args, out)


def report(runs, scenarios, servers, args):
    lines = [f"Medians of {args.repeat} runs of {args.seconds:g} s "
             f"(after {args.warmup:g} s warm-up); ratio = this server / "
             f"{BASELINE}.", ""]
    for sc in scenarios:
        lines.append(f"**{sc}**: {SCENARIOS[sc][0]}")
        lines.append("")
        if sc.startswith("W"):
            lines += world_report(runs, sc, servers)
            continue
        if sc in ("S6", "S6t"):
            lines += ["| server | KiB per idle connection | ratio |",
                      "|---|---:|---:|"]
            base = median_of(runs.get((sc, BASELINE), []), "kib_per_connection")
            for name in servers:
                if (sc, name) not in runs:
                    continue
                v = median_of(runs.get((sc, name), []), "kib_per_connection")
                lines.append(f"| {name} | {v:.1f} | {v / base:.2f} |")
            lines.append("")
            continue
        lines += ["| server | delivered msg/s | ratio | MB/s | server CPU "
                  "us/msg | ratio | vs floor-epoll | server CPU % | client "
                  "CPU % | allocs/msg | writes/msg | p99 us | all ok |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
                  "---:|---|"]
        base = runs.get((sc, BASELINE), [])
        base_rate = median_of(base, "delivered_per_s")
        base_cpu = median_of(base, "server_cpu_us_per_msg")
        floor = runs.get((sc, "floor-epoll"), [])
        floor_cpu = median_of(floor, "server_cpu_us_per_msg") if floor else 0
        for name in servers:
            rs = runs.get((sc, name), [])
            if not rs:
                continue
            rate = median_of(rs, "delivered_per_s")
            cpu = median_of(rs, "server_cpu_us_per_msg")
            lines.append(
                f"| {name} | {rate:,.0f} | {rate / base_rate:.2f} | "
                f"{median_of(rs, 'mb_per_s'):.1f} | {cpu:.3f} | "
                f"{cpu / base_cpu:.2f} | "
                f"{f'{cpu / floor_cpu:.2f}' if floor_cpu else ''} | "
                f"{median_of(rs, 'server_cpu_pct'):.0f} "
                f"| {median_of(rs, 'client_cpu_pct'):.0f} | "
                f"{median_of(rs, 'allocs_per_msg'):.3f} | "
                f"{median_of(rs, 'writes_per_msg'):.3f} | "
                f"{median_of(rs, 'p99_us'):.0f} | "
                f"{'yes' if all(r['ok'] for r in rs) else 'NO'} |")
        lines.append("")
    return lines


def world_report(runs, sc, servers):
    """The W rows: per entity update, and each backend against its naive
    variant (the same server encoding every receiver's snapshot itself)."""
    lines = ["| server | entity updates/s | snapshot MB/s | server CPU ns per "
             "entity update | ratio to naive | tick late p99 ms | "
             "move-to-snapshot p50 / p99 ms | all ok |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name in [s for s in WORLD_SERVERS if s in servers]:
        rs = runs.get((sc, name), [])
        if not rs:
            continue
        cpu = median_of(rs, "server_cpu_ns_per_entity")
        naive = WORLD_BASELINE.get(name)
        ratio = (f"{cpu / median_of(runs.get((sc, naive), []), 'server_cpu_ns_per_entity'):.2f}"
                 if naive and runs.get((sc, naive)) else "")
        lines.append(
            f"| {name} | {median_of(rs, 'entity_updates_per_s'):,.0f} | "
            f"{median_of(rs, 'snapshot_mb_per_s'):.1f} | {cpu:.1f} | {ratio} "
            f"| {median_of(rs, 'tick_late_p99_ms'):.1f} | "
            f"{median_of(rs, 'p50_us') / 1e3:.1f} / "
            f"{median_of(rs, 'p99_us') / 1e3:.1f} | "
            f"{'yes' if all(r['ok'] for r in rs) else 'NO'} |")
    lines.append("")
    return lines


def plot_room_sizes(servers, args, out):
    """Delivered messages per second against room size, one line a server."""
    rows = []
    for size in ROOM_SIZES:
        row = [size]
        for name in servers:
            results = [run_load(name, f"--mode chat --sessions {size} "
                                      f"--senders 4 --payload 64 --depth 16",
                                args.warmup, args.seconds)
                       for _ in range(args.repeat)]
            row.append(median_of(results, "delivered_per_s"))
            print(f"room {size} {name}: {row[-1]:,.0f} msg/s", flush=True)
        rows.append(row)
    data = out / "room_size.dat"
    data.write_text("# room " + " ".join(servers) + "\n" + "\n".join(
        " ".join(f"{v:.0f}" for v in row) for row in rows) + "\n")
    if not shutil.which("gnuplot"):
        print("gnuplot not found: wrote", data)
        return
    plots = ", ".join(
        f"'{data}' using 1:{i + 2} with linespoints title '{name}'"
        for i, name in enumerate(servers))
    script = (f"set terminal pngcairo size 800,500\n"
              f"set output '{out / 'room_size.png'}'\n"
              "set logscale x\nset xlabel 'sessions in room 0 (4 senders)'\n"
              "set ylabel 'delivered messages per second'\nset key left top\n"
              "set grid\nset format y '%.1s%c'\n"
              "set title 'Chat broadcast, one server thread'\n"
              f"plot {plots}\n")
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    print("plot:", out / "room_size.png")


if __name__ == "__main__":
    sys.exit(main())
