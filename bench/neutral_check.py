#!/usr/bin/env python3
"""The runner against a neutral load generator (issue 10, item 1).

bench/scenarios.py measures servers under DummyClient, our own client. This
script measures the same servers, started and pinned the same way (server on
CPU 0, load on CPU 1), under bench/tools/neutral_load.c, a load generator
written from docs/PROTOCOL.md alone that shares no code with DummyClient,
and prints the ratios each tool gives side by side. When the two disagree,
the runner is favouring someone.

    python3 bench/neutral_check.py [--repeat 3] [--seconds 5]
        [--servers gameserver-uring,gameserver-epoll,asio,floor-epoll]
        [--shapes S1,S4s,S5]

The floor servers (bench/scenarios.py's floor-*) run the echo shapes only.

Runs are interleaved (every server once per repetition, the order rotating),
and the figures are medians: delivered messages per second and server CPU
(utime + stime over the measured window) per delivered message, for each
tool, with each server's ratio to the first one listed.
"""
import argparse
import re
import statistics
import subprocess
import sys
import time

import scenarios as runner

NEUTRAL = runner.BUILD / "bench" / "neutral_load"

# The shapes of bench/scenarios.py, in both tools' words.
SHAPES = {
    "S1": ("--mode echo --sessions 100 --payload 64 --depth 16",
           "--mode echo --sessions 100 --payload 64 --depth 16"),
    "S2": ("--mode echo --sessions 1000 --payload 64 --depth 1",
           "--mode echo --sessions 1000 --payload 64 --depth 1"),
    "S4": ("--mode chat --sessions 1000 --senders 1 --payload 128 --depth 64",
           "--mode chat --sessions 1000 --payload 128 --depth 64"),
    "S4s": ("--mode chat --sessions 1000 --senders 1 --payload 128 --depth 16",
            "--mode chat --sessions 1000 --payload 128 --depth 16"),
    "S5": ("--mode echo --sessions 10 --payload 4092 --depth 8",
           "--mode echo --sessions 10 --payload 4092 --depth 8"),
}


def run_neutral(server_name, args, seconds, warmup):
    server = runner.Server(server_name)
    try:
        cmd = runner.pinned(1, [str(NEUTRAL), "--port", str(server.port),
                                *args.split(), "--seconds", str(seconds),
                                "--warmup", str(warmup)])
        client = subprocess.Popen(cmd, text=True, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        cpu = {}
        out = ""
        for line in client.stdout:
            if line.startswith("[measure] "):
                cpu[line.split()[1]] = runner.cpu_seconds(server.proc.pid)
            out += line
        if client.wait() != 0 or len(cpu) != 2:
            raise RuntimeError(f"neutral_load against {server_name}: {out}")
        m = re.search(r"delivered (\d+) in ([\d.]+) s", out)
        count, window = int(m.group(1)), float(m.group(2))
        return count / window, (cpu["end"] - cpu["start"]) / max(count, 1) * 1e6
    finally:
        server.stop()


def run_dummy(server_name, args, seconds, warmup):
    r = runner.run_load(server_name, args, warmup, seconds)
    return r["delivered_per_s"], r["server_cpu_us_per_msg"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--servers", default="gameserver-uring,gameserver-epoll,asio")
    p.add_argument("--shapes", default="S1,S4s,S5")
    a = p.parse_args()
    servers = a.servers.split(",")
    shapes = a.shapes.split(",")
    results = {}  # (shape, tool, server) -> [(rate, cpu)]
    for rep in range(a.repeat):
        for shape in shapes:
            # The floors answer C_ECHO only.
            echo = "echo" in SHAPES[shape][0]
            pool = [s for s in servers
                    if echo or s not in runner.FLOOR_SERVERS]
            order = pool[rep % len(pool):] + pool[:rep % len(pool)]
            for name in order:
                for tool, fn, args in (("dummy", run_dummy, SHAPES[shape][0]),
                                       ("neutral", run_neutral,
                                        SHAPES[shape][1])):
                    rate, cpu = fn(name, args, a.seconds, a.warmup)
                    results.setdefault((shape, tool, name), []).append(
                        (rate, cpu))
                    print(f"[{rep + 1}/{a.repeat}] {shape} {tool:7s} {name}: "
                          f"{rate:,.0f}/s, {cpu:.3f} us/msg", flush=True)
    base = servers[0]
    print(f"\nMedians of {a.repeat}; ratios to {base}.\n")
    print("| shape | server | DummyClient msg/s | ratio | CPU us/msg | ratio "
          "| neutral_load msg/s | ratio | CPU us/msg | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for shape in shapes:
        for name in servers:
            if (shape, "dummy", name) not in results:
                continue
            cells = [shape, name]
            for tool in ("dummy", "neutral"):
                rs = results[(shape, tool, name)]
                bs = results[(shape, tool, base)]
                rate = statistics.median(r for r, _ in rs)
                cpu = statistics.median(c for _, c in rs)
                brate = statistics.median(r for r, _ in bs)
                bcpu = statistics.median(c for _, c in bs)
                cells += [f"{rate:,.0f}", f"{rate / brate:.2f}", f"{cpu:.3f}",
                          f"{cpu / bcpu:.2f}"]
            print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
