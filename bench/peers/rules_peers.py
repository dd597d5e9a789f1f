#!/usr/bin/env python3
"""Rule strategies: the compiled rules engine against the crossover engine and vectorbt, in one run.

1. The seed's grid (2,700 combinations, last 2,000 ORCL bars): the built-in ma_cross, whose rules
   the crossover engine serves, and the same rules with their parameters in another order, which
   the crossover engine does not take: the compiled rules engine's own rate on crossover rules.
   The results files must be identical.
2. strategies/trend_rsi.yaml (an EMA/SMA cross taken while RSI(14) is low, left when RSI runs high
   or the averages cross back: no built-in has it) over a ~73,000-combination grid on the last
   4,000 ORCL bars; the crossover engine's rate on its 100,000-combination workload on the same
   bars beside it.
3. vectorbt on the same rule strategy and grid with its fastest idiom: TA-Lib's indicator arrays
   for every column at once, the rules as NumPy array operations, one Portfolio.from_signals over
   all columns (numba; compiled before timing); a spread sample of the grid's columns (the whole
   grid would need tens of GB), its rate compared. The best sampled combination's trades must agree
   with gtrader's.
gtrader's figures are `gtrader bench` medians (data in memory, indicators and tables included).
Usage: rules_peers.py [--gtrader BIN] [--sample N] [--json]"""
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

import numpy as np
import pandas as pd
import talib
import vectorbt as vbt

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from peer_strategies import crossings  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
TREND_RSI = ROOT / "strategies" / "trend_rsi.yaml"
MA_CROSS = ROOT / "strategies" / "ma_cross.yaml"
RULE_GRID = {"fast": range(5, 45), "slow": range(50, 201, 6), "entry_rsi": range(40, 77, 4), "exit_rsi": range(60, 96, 5)}
SEED_GRID = ["fast=5:19", "slow=20:49", "ma_type=0:2", "volume_filter=false,true"]


def grid_flags(grid):
    return [f"{k}={v.start}:{v[-1]}:{v.step}" for k, v in grid.items()]


def valid_combinations():
    return [(f, s, e, x) for f in RULE_GRID["fast"] for s in RULE_GRID["slow"] for e in RULE_GRID["entry_rsi"]
            for x in RULE_GRID["exit_rsi"] if f < s and e <= x]


def bench(binary, csv_path, bars, *args):
    out = subprocess.run([binary, "bench", "--data", csv_path, "--bars", str(bars), "--threads",
                          str(multiprocessing.cpu_count()), "--min-seconds", "2", "--json", *args],
                         capture_output=True, text=True, check=True).stdout
    row = json.loads(out)["results"][0]
    return row["combos_per_sec"], row["combinations"], row["engine"]


def rule_signals(close, combos):
    """trend_rsi's rules for every column: entries and exits as (bars, columns) arrays."""
    ema = {f: talib.EMA(close, f) for f in {c[0] for c in combos}}
    sma = {s: talib.SMA(close, s) for s in {c[1] for c in combos}}
    rsi = talib.RSI(close, 14)[:, None]
    up, down = crossings(np.column_stack([ema[c[0]] for c in combos]), np.column_stack([sma[c[1]] for c in combos]))
    entry_level = np.array([c[2] for c in combos], float)[None, :]
    exit_level = np.array([c[3] for c in combos], float)[None, :]
    with np.errstate(invalid="ignore"):
        entries = up & (rsi < entry_level)
        exits = (rsi > exit_level) | down
    return entries, exits


def vectorbt_run(frame, combos):
    close = frame["Close"].to_numpy(float)
    entries, exits = rule_signals(close, combos)
    # Next-open fills: the signal of bar t trades at bar t+1's open.
    entries = np.vstack([np.zeros((1, len(combos)), bool), entries[:-1]])
    exits = np.vstack([np.zeros((1, len(combos)), bool), exits[:-1]])
    index = pd.DatetimeIndex(frame["Date"])
    pf = vbt.Portfolio.from_signals(pd.Series(close, index=index), pd.DataFrame(entries, index=index),
                                    pd.DataFrame(exits, index=index),
                                    price=pd.Series(frame["Open"].to_numpy(float), index=index),
                                    init_cash=100000.0, freq="1D")
    return pf, pf.sharpe_ratio().to_numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gtrader", default=str(ROOT / "build" / "release" / "gtrader"))
    parser.add_argument("--sample", type=int, default=4000, help="vectorbt's columns (a spread sample of the grid)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    source = pd.read_csv(ROOT / "data" / "orcl-1995-2014.csv", parse_dates=["Date"])
    combos = valid_combinations()
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = os.path.join(tmp, "orcl.csv")
        source.assign(Date=source["Date"].dt.strftime("%Y-%m-%d")).to_csv(csv_path, index=False)

        # 1. The seed's grid: crossover engine and its rules form, same run, same results.
        # ma_type first: the same rules, not in the crossover engines' parameter order.
        lines = MA_CROSS.read_text().splitlines()
        at = next(i for i, line in enumerate(lines) if line.strip().startswith("ma_type:"))
        first = next(i for i, line in enumerate(lines) if line.strip().startswith("fast:"))
        lines.insert(first, lines.pop(at))
        reordered = os.path.join(tmp, "ma_cross_reordered.yaml")
        pathlib.Path(reordered).write_text("\n".join(lines) + "\n")
        seed_builtin, _, _ = bench(args.gtrader, csv_path, 2000, "--sizes", "2700")
        seed_rules, _, seed_rules_engine = bench(args.gtrader, csv_path, 2000, "--strategy-file", reordered,
                                                 *sum([["--grid", g] for g in SEED_GRID], []))
        last_2000 = os.path.join(tmp, "orcl-2000.csv")
        source.tail(2000).assign(Date=lambda f: f["Date"].dt.strftime("%Y-%m-%d")).to_csv(last_2000, index=False)
        files = []
        for strategy in (["--strategy", "ma_cross"], ["--strategy-file", reordered]):
            out = os.path.join(tmp, f"seed-{len(files)}.csv")
            subprocess.run([args.gtrader, "optimize", "--data", last_2000, *strategy,
                            *sum([["--grid", g] for g in SEED_GRID], []), "--no-cache", "--cache-dir", tmp,
                            "--out", out],
                           check=True, capture_output=True)
            rows = list(csv.DictReader(io.StringIO(pathlib.Path(out).read_text())))
            files.append({tuple(r[k] for k in ("fast", "slow", "ma_type", "volume_filter")): r for r in rows})
        seed_identical = files[0] == files[1]  # every combination's every field, as written

        # 2. The rule strategy and the crossover engine's large workload, on the last 4,000 bars.
        rules_rate, rules_combos, rules_engine = bench(args.gtrader, csv_path, 4000, "--strategy-file", str(TREND_RSI),
                                                       *sum([["--grid", g] for g in grid_flags(RULE_GRID)], []))
        fast_rate, _, _ = bench(args.gtrader, csv_path, 4000, "--sizes", "100000")

        # 3. vectorbt on a spread sample of the same grid.
        frame = source.tail(4000).reset_index(drop=True)
        sample = combos[:: max(1, len(combos) // args.sample)]
        vectorbt_run(frame.head(300), sample[:10])  # numba compilation, before timing
        start = time.perf_counter()
        pf, sharpe = vectorbt_run(frame, sample)
        vbt_seconds = time.perf_counter() - start
        counts = pf.trades.count().to_numpy()
        best = int(np.nanargmax(np.where(counts >= 5, sharpe, np.nan)))  # the best that trades at all
        f, s, e, x = sample[best]
        last_4000 = os.path.join(tmp, "orcl-4000.csv")
        frame.assign(Date=frame["Date"].dt.strftime("%Y-%m-%d")).to_csv(last_4000, index=False)
        trades_csv = os.path.join(tmp, "trades.csv")
        subprocess.run([args.gtrader, "backtest", "--data", last_4000, "--strategy-file", str(TREND_RSI),
                        "--param", f"fast={f}", "--param", f"slow={s}", "--param", f"entry_rsi={e}",
                        "--param", f"exit_rsi={x}", "--trades", trades_csv], check=True, capture_output=True)
        dates = frame["Date"].dt.strftime("%Y-%m-%d").to_numpy()
        ours = [(r["entry_time"], r["exit_time"]) for r in csv.DictReader(io.StringIO(pathlib.Path(trades_csv).read_text()))]
        records = pf.trades.records
        records = records[records["col"] == best]
        theirs = [(dates[int(r["entry_idx"])], dates[int(r["exit_idx"])] if int(r["status"]) == 1 else "")
                  for _, r in records.iterrows()]

    vbt_rate = len(sample) / vbt_seconds
    report = {
        "cores": multiprocessing.cpu_count(),
        "seed_grid": {"bars": 2000, "combinations": 2700, "builtin_combos_per_sec": seed_builtin,
                      "rules_combos_per_sec": seed_rules, "rules_engine": seed_rules_engine,
                      "ratio": seed_rules / seed_builtin, "results_identical": seed_identical},
        "rule_strategy": {"bars": 4000, "combinations": rules_combos, "combos_per_sec": rules_rate,
                          "engine": rules_engine, "crossover_engine_100k_combos_per_sec": fast_rate,
                          "ratio_to_crossover_engine": rules_rate / fast_rate},
        "vectorbt": {"columns": len(sample), "seconds": vbt_seconds, "combos_per_sec": vbt_rate,
                     "gtrader_ratio": rules_rate / vbt_rate, "best_sampled": dict(zip(RULE_GRID, sample[best])),
                     "best_trades": len(ours), "trades_agree": ours == theirs},
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        r = report
        print(f"seed grid, 2,000 bars, {r['cores']} cores: ma_cross (crossover engine) {seed_builtin:.4g} combos/s, "
              f"its rules on the {seed_rules_engine} engine {seed_rules:.4g} ({r['seed_grid']['ratio']:.2f}x), "
              f"results identical: {seed_identical}")
        print(f"trend_rsi, {rules_combos} combinations, 4,000 bars: {rules_rate:.4g} combos/s ({rules_engine}); "
              f"crossover engine at 100,000: {fast_rate:.4g} ({r['rule_strategy']['ratio_to_crossover_engine']:.2f}x)")
        print(f"vectorbt, {len(sample)} sampled columns: {vbt_rate:.4g} combos/s; gtrader is "
              f"{r['vectorbt']['gtrader_ratio']:.4g}x; best sampled combination's {len(ours)} trades agree: "
              f"{ours == theirs}")
    return 0 if seed_identical and ours == theirs else 1


if __name__ == "__main__":
    sys.exit(main())
