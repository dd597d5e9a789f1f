#!/usr/bin/env python3
"""`gtrader live` on a real redis-server on loopback (password set, no persistence): per-bar latency
and throughput (docs/PERFORMANCE.md "Live signals").

1. Latency: one symbol (ORCL), its first 4,000 bars processed as a warm-up, then each of the other
   1,036 bars added alone (XADD) and timed until the engine's transaction for it has committed:
   the moment Redis notifies the set of the engine's progress key, which the same MULTI/EXEC as the
   bar's signals and acknowledgement writes. So each figure covers XADD -> read -> decision ->
   signal XADD -> commit -> notification; p50 and p99 over the bars.
2. Throughput: 1,000 symbols (slices of ORCL and YHOO, 200 bars each, interleaved by bar as a feed
   sends them: 200,000 bars) in the stream before the engine starts; the time from its start until
   its progress key names the last bar.
Usage: live_bench.py [--gtrader BIN] [--symbols N] [--bars-per-symbol N] [--json]"""
import argparse
import json
import os
import pathlib
import secrets
import statistics
import subprocess
import sys
import time

import pandas as pd

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "python"))
from redis_server import Connection, RedisServer  # noqa: E402  (the tests' server on loopback)
FILES = [ROOT / "data" / "orcl-1995-2014.csv", ROOT / "data" / "yhoo-1996-2014.csv"]
STRATEGY = ["--strategy", "ma_cross", "--param", "fast=10", "--param", "slow=30"]
PROGRESS = "gtrader:live:bars:gtrader:signals:last"


def bar_fields(symbol, frame, i):
    row = frame.iloc[i]
    return ["symbol", symbol, "time", row["Date"], "open", row["Open"], "high", row["High"], "low", row["Low"],
            "close", row["Close"], "volume", row["Volume"]]


def live(binary, port, password, idle):
    return subprocess.Popen([binary, "live", "--redis", f"redis://:{password}@127.0.0.1:{port}/0", "--bars-stream",
                             "bars", "--signals-stream", "signals", "--idle-exit", str(idle), *STRATEGY],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(conn, last_id, timeout=600):
    deadline = time.perf_counter() + timeout
    while conn.call("GET", PROGRESS) != last_id:
        if time.perf_counter() > deadline:
            sys.exit("the engine did not catch up")
        time.sleep(0.0005)


def latency(binary, port, password):
    conn = Connection(port, password)
    frame = pd.read_csv(FILES[0], dtype=str)
    warm = 4000
    ids = conn.pipeline([["XADD", "bars", "*", *bar_fields("ORCL", frame, i)] for i in range(warm)])
    proc = live(binary, port, password, idle=5)
    wait_for(conn, ids[-1])
    conn.call("CONFIG", "SET", "notify-keyspace-events", "K$")
    listener = Connection(port, password)
    listener.call("SUBSCRIBE", f"__keyspace@0__:{PROGRESS}")
    times = []
    for i in range(warm, len(frame)):
        fields = bar_fields("ORCL", frame, i)
        start = time.perf_counter()
        conn.call("XADD", "bars", "*", *fields)
        listener.next_reply()  # the progress key set: the bar's transaction committed
        times.append(time.perf_counter() - start)
    proc.terminate()
    proc.communicate()
    times_us = sorted(t * 1e6 for t in times)
    return {"bars": len(times_us), "p50_us": statistics.median(times_us),
            "p99_us": times_us[int(0.99 * (len(times_us) - 1))], "max_us": times_us[-1]}


def throughput(binary, port, password, symbols, per_symbol):
    conn = Connection(port, password)
    conn.call("DEL", "bars", "signals", PROGRESS)
    frames = [pd.read_csv(f, dtype=str) for f in FILES]
    slices = []
    for s in range(symbols):
        frame = frames[s % 2]
        start = (s * 37) % (len(frame) - per_symbol)
        slices.append((f"S{s:04d}", frame, start))
    last = None
    for i in range(per_symbol):  # bar i of every symbol, then bar i + 1: a feed's order
        last = conn.pipeline([["XADD", "bars", "*", *bar_fields(name, frame, start + i)]
                              for name, frame, start in slices])[-1]
    begin = time.perf_counter()
    proc = live(binary, port, password, idle=0.5)
    wait_for(conn, last)
    seconds = time.perf_counter() - begin
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(err)
    total = symbols * per_symbol
    return {"symbols": symbols, "bars": total, "seconds": seconds, "bars_per_second": total / seconds,
            "summary": out.strip()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gtrader", default=str(ROOT / "build" / "release" / "gtrader"))
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--bars-per-symbol", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    server = RedisServer(password=secrets.token_hex(8))
    try:
        port, password = server.port, server.password
        result = {"latency": latency(args.gtrader, port, password),
                  "throughput": throughput(args.gtrader, port, password, args.symbols, args.bars_per_symbol),
                  "cores": os.cpu_count()}
    finally:
        server.stop()
    if args.json:
        print(json.dumps(result, indent=2))
        return
    lat, thr = result["latency"], result["throughput"]
    print(f"latency over {lat['bars']} bars, XADD to committed signal: p50 {lat['p50_us']:.0f} us, "
          f"p99 {lat['p99_us']:.0f} us, max {lat['max_us']:.0f} us")
    print(f"throughput: {thr['bars']} bars of {thr['symbols']} symbols in {thr['seconds']:.2f} s = "
          f"{thr['bars_per_second']:.0f} bars/s ({thr['summary']})")


if __name__ == "__main__":
    main()
