#!/usr/bin/env python3
"""gtrader against the tools quants use today, on the same data and grid, in one run.

Workload: the seed's grid (fast 5..19, slow 20..49, ma_type 0..2, volume_filter both: 2,700
combinations) over the last 2,000 daily bars of ORCL, next-open fills (docs/SEMANTICS.md "Fills and costs", "ma_cross").
Peers:
  - backtrader: optstrategy on all cores (a spread sample of the grid: at ~10 combinations/s
    the whole grid would take minutes; the rate is what is compared);
  - vectorbt: its fastest idiom for a crossover grid: indicator arrays for every column at once,
    one Portfolio.from_signals over all 2,700 columns (numba), Sharpe for every column; the
    numba compilation is warmed up before timing;
  - numpy/pandas like the seed: one vectorized backtest per combination in a Python loop.
Checks that all four agree on the best combination's trades (entry and exit fill dates), then
prints each rate and gtrader's ratio to it. Usage: run_peers.py [--gtrader BIN] [--json]
"""
import argparse
import csv
import io
import json
import multiprocessing
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import backtrader as bt
import numpy as np
import pandas as pd
import vectorbt as vbt

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from peer_strategies import MA_FUNCTIONS, BacktraderMaCross, crossings, fills_to_trades, volume_ok  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
GRID = [(f, s, t, v) for f in range(5, 20) for s in range(20, 50) for t in range(3) for v in (False, True)]


def load(bars):
    frame = pd.read_csv(ROOT / "data" / "orcl-1995-2014.csv", parse_dates=["Date"]).tail(bars).reset_index(drop=True)
    return frame


def run_gtrader(binary, csv_path):
    """Warm, in-process figure (`gtrader bench`: median of repeated optimizations, data in memory,
    indicators included), as vectorbt's is taken after its compilation; and the best combination."""
    bench = json.loads(subprocess.run([binary, "bench", "--data", csv_path, "--sizes", "2700", "--bars", "2000",
                                       "--threads", str(multiprocessing.cpu_count()), "--json"],
                                      capture_output=True, text=True, check=True).stdout)
    grid = ["--grid", "fast=5:19", "--grid", "slow=20:49", "--grid", "ma_type=0:2", "--grid", "volume_filter=false,true"]
    # The run journal goes to the data's temporary folder, not the user's cache.
    summary = json.loads(subprocess.run([binary, "optimize", "--data", csv_path, "--strategy", "ma_cross", *grid,
                                         "--cache-dir", os.path.dirname(csv_path), "--json"],
                                        capture_output=True, text=True, check=True).stdout)
    best = summary["best"]["parameters"]
    return bench["results"][0]["seconds_median"], summary["seconds"], (
        best["fast"], best["slow"], best["ma_type"], best["volume_filter"])


def gtrader_trades(binary, csv_path, combo):
    with tempfile.TemporaryDirectory() as tmp:
        trades = pathlib.Path(tmp) / "t.csv"
        f, s, t, v = combo
        subprocess.run([binary, "backtest", "--data", csv_path, "--strategy", "ma_cross", "--param", f"fast={f}",
                        "--param", f"slow={s}", "--param", f"ma_type={t}", "--param", f"volume_filter={str(v).lower()}",
                        "--trades", trades], check=True, capture_output=True)
        return [(r["entry_time"], r["exit_time"]) for r in csv.DictReader(io.StringIO(trades.read_text()))]


def backtrader_cerebro(frame, maxcpus=1):
    cerebro = bt.Cerebro(stdstats=False, maxcpus=maxcpus, optreturn=True)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame.set_index("Date"), openinterest=None))
    cerebro.broker.set_checksubmit(False)
    cerebro.broker.setcash(100000.0)
    return cerebro


def run_backtrader(frame, sample):
    cerebro = backtrader_cerebro(frame, maxcpus=multiprocessing.cpu_count())
    # optstrategy takes the product of its lists: one run per sampled combination.
    for f, s, t, v in sample:
        cerebro.optstrategy(BacktraderMaCross, fast=[f], slow=[s], ma_type=[t], volume_filter=[v])
    start = time.perf_counter()
    cerebro.run()
    return time.perf_counter() - start


def backtrader_trades(frame, combo):
    cerebro = backtrader_cerebro(frame)
    f, s, t, v = combo
    cerebro.addstrategy(BacktraderMaCross, fast=f, slow=s, ma_type=t, volume_filter=v)
    return fills_to_trades(cerebro.run()[0].fills)


def vectorbt_grid(frame):
    """Signals for every combination as 2,000 x 2,700 arrays, one portfolio simulation."""
    close = frame["Close"].to_numpy(float)
    ma = {(t, p): MA_FUNCTIONS[t](close, p) for t in range(3) for p in range(5, 50)}
    fast = np.column_stack([ma[(t, f)] for f, s, t, v in GRID])
    slow = np.column_stack([ma[(t, s)] for f, s, t, v in GRID])
    up, down = crossings(fast, slow)
    vol = volume_ok(frame["Volume"].to_numpy(float))[:, None]
    filtered = np.array([v for f, s, t, v in GRID])[None, :]
    entries = up & (vol | ~filtered)
    # Next-open fills: the signal of bar t trades at bar t+1's open.
    entries = np.vstack([np.zeros((1, len(GRID)), bool), entries[:-1]])
    exits = np.vstack([np.zeros((1, len(GRID)), bool), down[:-1]])
    index = pd.DatetimeIndex(frame["Date"])
    pf = vbt.Portfolio.from_signals(pd.Series(close, index=index), pd.DataFrame(entries, index=index),
                                    pd.DataFrame(exits, index=index), price=pd.Series(frame["Open"].to_numpy(float), index=index),
                                    init_cash=100000.0, freq="1D")
    return pf, pf.sharpe_ratio()


def vectorbt_trades(pf, frame, combo):
    col = GRID.index(combo)
    records = pf.trades.records
    records = records[records["col"] == col]
    dates = frame["Date"].dt.strftime("%Y-%m-%d").to_numpy()
    return [(dates[int(r["entry_idx"])], dates[int(r["exit_idx"])] if int(r["status"]) == 1 else "")
            for _, r in records.iterrows()]


def numpy_backtest(close, open_, vol_ok, f, s, t, v):
    """One combination, vectorized like the seed's pandas code: positions from events, returns."""
    up, down = crossings(MA_FUNCTIONS[t](close, f), MA_FUNCTIONS[t](close, s))
    if v:
        up = up & vol_ok
    event = np.where(up, 1.0, np.where(down, 0.0, np.nan))
    signal = pd.Series(event).ffill().fillna(0.0).to_numpy()
    held = np.concatenate([[0.0], signal[:-1]])  # filled at the next open
    prev_held = np.concatenate([[0.0], held[:-1]])
    prev_close = np.concatenate([[close[0]], close[:-1]])
    ret = np.where((held == 1) & (prev_held == 0), close / open_ - 1, 0.0)
    ret = np.where((held == 1) & (prev_held == 1), close / prev_close - 1, ret)
    ret = np.where((held == 0) & (prev_held == 1), open_ / prev_close - 1, ret)
    equity = np.cumprod(1 + ret)
    sharpe = ret.mean() / ret.std(ddof=1) * np.sqrt(252) if ret.std(ddof=1) > 0 else 0.0
    return held, sharpe, equity[-1]


def run_numpy(frame):
    close, open_ = frame["Close"].to_numpy(float), frame["Open"].to_numpy(float)
    vol_ok = volume_ok(frame["Volume"].to_numpy(float))
    start = time.perf_counter()
    for combo in GRID:
        numpy_backtest(close, open_, vol_ok, *combo)
    return time.perf_counter() - start


def numpy_trades(frame, combo):
    close, open_ = frame["Close"].to_numpy(float), frame["Open"].to_numpy(float)
    held, _, _ = numpy_backtest(close, open_, volume_ok(frame["Volume"].to_numpy(float)), *combo)
    dates = frame["Date"].dt.strftime("%Y-%m-%d").to_numpy()
    starts = np.flatnonzero(np.diff(np.concatenate([[0.0], held])) == 1)
    ends = np.flatnonzero(np.diff(np.concatenate([[0.0], held])) == -1)
    return [(dates[a], dates[b] if i < len(ends) else "") for i, (a, b) in
            enumerate(zip(starts, list(ends) + [0] * (len(starts) - len(ends))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gtrader", default=str(ROOT / "build" / "release" / "gtrader"))
    parser.add_argument("--bars", type=int, default=2000)
    parser.add_argument("--backtrader-sample", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    frame = load(args.bars)
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = os.path.join(tmp, f"orcl-last-{args.bars}.csv")
        frame.assign(Date=frame["Date"].dt.strftime("%Y-%m-%d")).to_csv(csv_path, index=False)

        seconds_gt, seconds_gt_cold, best = run_gtrader(args.gtrader, csv_path)
        sample = GRID[:: max(1, len(GRID) // args.backtrader_sample)]
        seconds_bt = run_backtrader(frame, sample)
        vectorbt_grid(frame.head(300))  # compile vectorbt's numba functions before timing
        start = time.perf_counter()
        pf, _ = vectorbt_grid(frame)
        seconds_vbt = time.perf_counter() - start
        seconds_np = run_numpy(frame)

        trades = {
            "gtrader": gtrader_trades(args.gtrader, csv_path, best),
            "backtrader": backtrader_trades(frame, best),
            "vectorbt": vectorbt_trades(pf, frame, best),
            "numpy": numpy_trades(frame, best),
        }
    agree = all(t == trades["gtrader"] for t in trades.values())
    rates = {
        "gtrader": len(GRID) / seconds_gt,
        "backtrader": len(sample) / seconds_bt,
        "vectorbt": len(GRID) / seconds_vbt,
        "numpy": len(GRID) / seconds_np,
    }
    measured = {"gtrader": len(GRID), "backtrader": len(sample), "vectorbt": len(GRID), "numpy": len(GRID)}
    report = {
        "bars": args.bars, "grid": len(GRID), "cores": multiprocessing.cpu_count(),
        "best": dict(zip(["fast", "slow", "ma_type", "volume_filter"], best)),
        "best_trades": len(trades["gtrader"]), "trades_agree": agree,
        "gtrader_cold_process_combos_per_sec": len(GRID) / seconds_gt_cold,
        "tools": {k: {"combinations": measured[k], "combos_per_sec": r, "gtrader_ratio": rates["gtrader"] / r}
                  for k, r in rates.items()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"seed grid ({len(GRID)} combinations), {args.bars} bars, {report['cores']} cores; best {report['best']}")
        print(f"{'tool':<12}{'combos':>8}{'combos/s':>14}{'gtrader is':>14}")
        for k, r in rates.items():
            print(f"{k:<12}{measured[k]:>8}{r:>14.4g}{rates['gtrader'] / r:>13.4g}x")
        print(f"(gtrader in a fresh process, thread pool start included: {len(GRID) / seconds_gt_cold:.4g} combos/s)")
        print(f"best combination's trades ({len(trades['gtrader'])}) agree across all tools: {agree}")
        if not agree:
            for k, t in trades.items():
                print(k, t[:5], "...")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
