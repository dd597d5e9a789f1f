"""Exits by price against the peers users come from, where their rules coincide with
docs/SEMANTICS.md "Exits by price and time" (that page says where and why each differs).

- vectorbt (Portfolio.from_signals with open/high/low, sl_stop, tp_stop, sl_trail): with
  --fill close both enter at the signal bar's close, watch the stops from the next bar, fill at the
  level or at a gapped open, and take a stop before a target in the same bar. Every trade and the
  final value are equal. (vectorbt takes no entry in the bar a stop exited in; the crossover
  signals used here never ask for one there.)
- backtesting.py (buy(sl=..., tp=...)): with next-open fills both check the entry bar's range
  after its open, fill at the level or a gapped open, and take the stop first. Every trade is
  equal except where backtesting.py refuses the order: a stop or target beyond the signal bar's
  close (a gapped entry) is refused for a market order, so those few trades enter by a limit
  order, whose levels backtesting.py only watches from the next bar on; and backtesting.py closes
  the last open trade at the end (finalize_trades), where we report it open.
The signals are the crossover of TA-Lib's averages (tests/python/reference.py), given to each."""
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt

import reference as ref
from conftest import ALL_FILES, run_gtrader

PARAMS = dict(fast=10, slow=30, ma_type=0, volume_filter=False)


def our_trades(path, exits, fill, tmp_path):
    trades = tmp_path / "trades.csv"
    flags = sum([["--param", f"{k}={str(v).lower()}"] for k, v in {**PARAMS, **exits}.items()], [])
    summary = json.loads(run_gtrader("backtest", "--data", path, "--strategy", "ma_cross", *flags, "--fill", fill,
                                     "--trades", trades, "--json").stdout)
    frame = pd.read_csv(trades, keep_default_na=False)
    return summary, [(r.entry_time, r.exit_time, round(float(r.exit_price), 8) if r.exit_time else None)
                     for r in frame.itertuples()]


@pytest.mark.parametrize("exits,theirs", [
    (dict(stop_loss=0.03), dict(sl_stop=0.03)),
    (dict(take_profit=0.04), dict(tp_stop=0.04)),
    (dict(trailing_stop=0.05), dict(sl_stop=0.05, sl_trail=True)),
    (dict(stop_loss=0.02, take_profit=0.03), dict(sl_stop=0.02, tp_stop=0.03)),
], ids=["stop", "target", "trailing", "stop-target"])
@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.stem)
def test_close_fills_equal_vectorbt(path, exits, theirs, tmp_path):
    frame = ref.load_frame(path)
    o, h, l, c = (pd.Series(frame[k].to_numpy(dtype=float)) for k in ("open", "high", "low", "close"))
    events = ref.strategy_events(frame, "ma_cross", PARAMS)
    pf = vbt.Portfolio.from_signals(c, events.long_entry, events.long_exit, open=o, high=h, low=l,
                                    init_cash=100000.0, **theirs)
    stamps = frame["stamp"].to_numpy()
    expected = [(stamps[int(r["Entry Timestamp"])],
                 stamps[int(r["Exit Timestamp"])] if r["Status"] == "Closed" else "",
                 round(float(r["Avg Exit Price"]), 8) if r["Status"] == "Closed" else None)
                for _, r in pf.trades.records_readable.iterrows()]
    summary, ours = our_trades(path, exits, "close", tmp_path)
    assert ours == expected
    assert summary["final_equity"] == pytest.approx(pf.final_value(), rel=1e-9)
    assert summary["total_return"] == pytest.approx(pf.total_return(), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("stop_loss,take_profit", [(0.03, 0), (0, 0.04), (0.02, 0.03)])
@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.stem)
def test_next_open_fills_equal_backtesting_py(path, stop_loss, take_profit, tmp_path):
    from backtesting import Backtest, Strategy

    frame = ref.load_frame(path)
    events = ref.strategy_events(frame, "ma_cross", PARAMS)
    opens = frame["open"].to_numpy(dtype=float)
    n = len(opens)
    bars = pd.DataFrame({"Open": opens, "High": frame["high"].to_numpy(dtype=float),
                         "Low": frame["low"].to_numpy(dtype=float), "Close": frame["close"].to_numpy(dtype=float),
                         "Volume": 1.0}, index=pd.date_range("2000-01-01", periods=n, freq="D"))
    by_limit = set()  # signal bars whose market order backtesting.py refused

    class Crossover(Strategy):
        def init(self):
            pass

        def next(self):
            t = len(self.data) - 1
            if self.position and events.long_exit[t]:
                self.position.close()
            elif not self.position and events.long_entry[t] and t + 1 < n:
                fill = opens[t + 1]  # the levels are fractions of the entry fill, the next open
                levels = dict(sl=fill * (1 - stop_loss) if stop_loss else None,
                              tp=fill * (1 + take_profit) if take_profit else None)
                try:
                    self.buy(**levels)
                except ValueError:  # a level beyond this close: refused for a market order
                    by_limit.add(t + 1)
                    self.buy(limit=fill, **levels)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = Backtest(bars, Crossover, cash=1e9, commission=0, finalize_trades=True).run()
    stamps = frame["stamp"].to_numpy()
    theirs = {stamps[int(r.EntryBar)]: (stamps[int(r.ExitBar)], round(float(r.ExitPrice), 8), int(r.EntryBar))
              for r in stats._trades.itertuples()}
    _, ours = our_trades(path, dict(stop_loss=stop_loss, take_profit=take_profit), "next_open", tmp_path)
    assert len(ours) == len(theirs)
    compared = 0
    for entry, exit_time, exit_price in ours:
        their_exit, their_price, entry_bar = theirs[entry]
        if exit_price is None or entry_bar in by_limit:
            continue
        assert (exit_time, exit_price) == (their_exit, their_price), entry
        compared += 1
    assert compared >= 0.9 * len(ours)
