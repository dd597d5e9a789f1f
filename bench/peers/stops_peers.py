#!/usr/bin/env python3
"""Exits as grid axes: the seed's grid x stop_loss x take_profit against vectorbt and backtesting.py.

1. gtrader: the seed's grid (fast 5..19, slow 20..49, ma_type 0..2, volume_filter) x stop_loss
   {0, 0.02, 0.04, 0.06, 0.08, 0.1} x take_profit {0, 0.05, 0.1, 0.15, 0.2, 0.25}: 97,200
   combinations on the last 2,000 ORCL bars, every core; the seed grid alone beside it. `gtrader
   bench` medians (data in memory, indicators and tables included).
2. vectorbt (its fastest idiom: TA-Lib's averages for every column, the crossings as NumPy array
   operations, one Portfolio.from_signals with sl_stop/tp_stop arrays over all columns, numba
   compiled before timing) on a spread sample of the grid, at close fills (where its stops and
   ours coincide, docs/SEMANTICS.md "Exits by price and time"); the sample's total returns must
   equal gtrader's --fill close results.
3. backtesting.py (buy(sl=, tp=) at next-open fills, one Backtest.run a combination) on a smaller
   sample; its rate.
Usage: stops_peers.py [--gtrader BIN] [--sample N] [--bt-sample N] [--json]"""
import argparse
import io
import json
import multiprocessing
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bars

import numpy as np
import pandas as pd
import vectorbt as vbt

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from peer_strategies import crossover_signals as signals  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEED = {"fast": range(5, 20), "slow": range(20, 50), "ma_type": range(3), "volume_filter": (False, True)}
STOPS = (0, 0.02, 0.04, 0.06, 0.08, 0.1)
TARGETS = (0, 0.05, 0.1, 0.15, 0.2, 0.25)
GRID = ["fast=5:19", "slow=20:49", "ma_type=0:2", "volume_filter=false,true",
        "stop_loss=" + ",".join(map(str, STOPS)), "take_profit=" + ",".join(map(str, TARGETS))]


def combinations():
    return [(f, s, m, v, sl, tp) for f in SEED["fast"] for s in SEED["slow"] for m in SEED["ma_type"]
            for v in SEED["volume_filter"] for sl in STOPS for tp in TARGETS]


def bench(binary, csv_path, *args):
    out = subprocess.run([binary, "bench", "--data", csv_path, "--bars", "2000", "--threads",
                          str(multiprocessing.cpu_count()), "--min-seconds", "2", "--json", *args],
                         capture_output=True, text=True, check=True).stdout
    row = json.loads(out)["results"][0]
    return row["combos_per_sec"], row["combinations"], row["engine"]


def vectorbt_run(frame, sample):
    entries, exits = signals(frame, sample)
    column = lambda values: np.array(values, float)[None, :]  # noqa: E731
    stop = column([c[4] if c[4] else np.inf for c in sample])  # vectorbt: inf is off
    target = column([c[5] if c[5] else np.inf for c in sample])
    series = {k: pd.Series(frame[k].to_numpy(float)) for k in ("Open", "High", "Low", "Close")}
    pf = vbt.Portfolio.from_signals(series["Close"], entries, exits, open=series["Open"], high=series["High"],
                                    low=series["Low"], sl_stop=stop, tp_stop=target, init_cash=100000.0, freq="1D")
    return pf.total_return().to_numpy()


def backtesting_run(frame, combo):
    from backtesting import Backtest, Strategy

    entries, exits = signals(frame, [combo])
    opens, n = frame["Open"].to_numpy(float), len(frame)
    _, _, _, _, stop, target = combo

    class Crossover(Strategy):
        def init(self):
            pass

        def next(self):
            t = len(self.data) - 1
            if self.position and exits[t, 0]:
                self.position.close()
            elif not self.position and entries[t, 0] and t + 1 < n:
                fill = opens[t + 1]
                levels = dict(sl=fill * (1 - stop) if stop else None, tp=fill * (1 + target) if target else None)
                try:
                    self.buy(**levels)
                except ValueError:  # a level beyond this close: backtesting.py refuses the market order
                    self.buy(limit=fill, **levels)

    bars = frame[["Open", "High", "Low", "Close", "Volume"]].set_index(pd.DatetimeIndex(frame["Date"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Backtest(bars, Crossover, cash=1e9, commission=0, finalize_trades=True).run()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gtrader", default=str(ROOT / "build" / "release" / "gtrader"))
    parser.add_argument("--sample", type=int, default=4000, help="vectorbt's columns (a spread sample of the grid)")
    parser.add_argument("--bt-sample", type=int, default=40, help="backtesting.py's runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    source = pd.read_csv(ROOT / "data" / "orcl-1995-2014.csv", parse_dates=["Date"])
    frame = source.tail(2000).reset_index(drop=True)
    combos = combinations()
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = os.path.join(tmp, "orcl.csv")
        frame.assign(Date=frame["Date"].dt.strftime("%Y-%m-%d")).to_csv(csv_path, index=False)
        rate, count, engine = bench(args.gtrader, csv_path, *sum([["--grid", g] for g in GRID], []))
        seed_rate, _, _ = bench(args.gtrader, csv_path, "--sizes", "2700")

        sample = combos[:: max(1, len(combos) // args.sample)]
        vectorbt_run(frame.head(300), sample[:10])  # numba compilation, before timing
        start = time.perf_counter()
        theirs = vectorbt_run(frame, sample)
        vbt_rate = len(sample) / (time.perf_counter() - start)
        out = os.path.join(tmp, "results.csv")
        subprocess.run([args.gtrader, "optimize", "--data", csv_path, "--strategy", "ma_cross",
                        *sum([["--grid", g] for g in GRID], []), "--fill", "close", "--no-cache", "--cache-dir", tmp,
                        "--out", out], check=True, capture_output=True)
        ours = pd.read_csv(out).set_index(["fast", "slow", "ma_type", "volume_filter", "stop_loss", "take_profit"])
        mine = np.array([ours.loc[c, "total_return"] for c in sample])
        agree = bool(np.allclose(mine, theirs, rtol=1e-9, atol=1e-12))

        bt_sample = combos[:: max(1, len(combos) // args.bt_sample)]
        start = time.perf_counter()
        for combo in bt_sample:
            backtesting_run(frame, combo)
        bt_rate = len(bt_sample) / (time.perf_counter() - start)

    report = {"cores": multiprocessing.cpu_count(), "bars": 2000,
              "gtrader": {"combinations": count, "combos_per_sec": rate, "engine": engine,
                          "seed_grid_combos_per_sec": seed_rate},
              "vectorbt": {"columns": len(sample), "combos_per_sec": vbt_rate, "gtrader_ratio": rate / vbt_rate,
                           "total_returns_agree": agree},
              "backtesting_py": {"runs": len(bt_sample), "combos_per_sec": bt_rate, "gtrader_ratio": rate / bt_rate}}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"seed grid x stop_loss x take_profit, {count} combinations, 2,000 bars, {report['cores']} cores: "
              f"{rate:.4g} combos/s ({engine}); the seed grid alone {seed_rate:.4g}")
        print(f"vectorbt, {len(sample)} sampled columns at close fills: {vbt_rate:.4g} combos/s (gtrader "
              f"{rate / vbt_rate:.4g}x); total returns equal gtrader --fill close: {agree}")
        print(f"backtesting.py, {len(bt_sample)} runs: {bt_rate:.4g} combos/s (gtrader {rate / bt_rate:.4g}x)")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
