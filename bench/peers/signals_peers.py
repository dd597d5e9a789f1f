#!/usr/bin/env python3
"""Signal arrays: gt.from_signals against vectorbt's Portfolio.from_signals, in one run.

Workload: 1,000 columns of random, non-conflicting entry and exit signals (3% of bars each) over
the last 4,000 ORCL bars, fill at the close, all cash, no costs: the setting where both tools mean the same thing. Each tool: the
median of 5 timed calls after a warm-up (numba's compilation for vectorbt), from the arrays in
memory to every column's total return and Sharpe ratio. The total returns must agree to 1e-9.
Usage: signals_peers.py [--columns N] [--bars N] [--json]"""
import argparse
import json
import multiprocessing
import pathlib
import statistics
import sys
import time

import numpy as np
import pandas as pd
import vectorbt as vbt

import gpt_trader as gt

ROOT = pathlib.Path(__file__).resolve().parents[2]


def timed(call, runs=5):
    call()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--columns", type=int, default=1000)
    parser.add_argument("--bars", type=int, default=4000, help="at most 5,036 (the bundled ORCL file)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    frame = pd.read_csv(ROOT / "data" / "orcl-1995-2014.csv", parse_dates=["Date"]).tail(args.bars)
    (bars,) = gt.as_bars({"orcl": frame.set_index("Date")})
    rng = np.random.default_rng(42)
    entries = rng.random((args.bars, args.columns)) < 0.03
    exits = rng.random((args.bars, args.columns)) < 0.03
    both = entries & exits
    entries, exits = entries & ~both, exits & ~both
    index = pd.to_datetime(np.asarray(bars.time), unit="s")
    close = pd.Series(np.asarray(bars.close), index=index)
    frames = pd.DataFrame(entries, index=index), pd.DataFrame(exits, index=index)

    def ours():
        m = gt.from_signals(bars, entries, exits, fill="close").metrics
        return m["total_return"].to_numpy(), m["sharpe"].to_numpy()

    def theirs():
        pf = vbt.Portfolio.from_signals(close, *frames, init_cash=100000.0, freq="1D")
        return pf.total_return().to_numpy(), pf.sharpe_ratio().to_numpy()

    ours_s, (ours_return, _) = timed(ours)
    theirs_s, (theirs_return, _) = timed(theirs)
    agree = bool(np.allclose(ours_return, theirs_return, rtol=1e-9, atol=0))
    report = {"columns": args.columns, "bars": args.bars, "cores": multiprocessing.cpu_count(),
              "gtrader_seconds": ours_s, "vectorbt_seconds": theirs_s, "ratio": theirs_s / ours_s,
              "gtrader_columns_per_sec": args.columns / ours_s, "vectorbt_columns_per_sec": args.columns / theirs_s,
              "total_returns_agree": agree}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.columns} columns x {args.bars} bars, {report['cores']} cores: gt.from_signals {ours_s * 1e3:.2f} ms, "
              f"vectorbt {theirs_s * 1e3:.1f} ms: {report['ratio']:.0f}x; total returns agree: {agree}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
