"""With --fill close, every metric that vectorbt defines as docs/SEMANTICS.md "Metrics" does (total return, final value,
trades, win rate, profit factor, max drawdown, annualized return, sharpe, sortino, calmar, and the
mean trade return up to its base) equals vectorbt's Portfolio.from_signals on the same signals. The signals are built here from TA-Lib's moving averages (an independent
implementation of docs/SEMANTICS.md "ma_cross" crossover rule), then given to both engines.

The semantics agree: fill at the signal bar's close, all equity in (size 1; vectorbt's default
size=inf), fractional units; an entry's commission comes out of the committed equity
(units = E / (price * (1 + fee))) in both, and slippage moves the fill price in both. So the test
covers costs too, and documents no difference."""
import csv
import io
import json

import numpy as np
import pandas as pd
import pytest
import talib
import vectorbt as vbt

from conftest import DAILY_FILES, run_gtrader

TIE = 1e-10  # include/gt/signal_rules.hpp


def crossings(fast, slow):
    above = fast - slow > TIE * np.abs(slow)
    below = slow - fast > TIE * np.abs(slow)
    defined = ~(np.isnan(fast) | np.isnan(slow))
    at_or_below = defined & ~above
    at_or_above = defined & ~below
    up = np.zeros_like(above)
    down = np.zeros_like(above)
    up[1:] = above[1:] & at_or_below[:-1]
    down[1:] = below[1:] & at_or_above[:-1]
    return up, down


@pytest.mark.parametrize("path", DAILY_FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("fast,slow,ma_type", [(10, 30, 0), (5, 20, 1), (15, 45, 2)])
@pytest.mark.parametrize("fees,slippage_bps", [(0.0, 0.0), (0.001, 5.0)])
def test_fill_close_equals_vectorbt(path, fast, slow, ma_type, fees, slippage_bps):
    frame = pd.read_csv(path, parse_dates=["Date"], index_col="Date")
    close = frame["Close"]
    ma = {0: talib.SMA, 1: talib.EMA, 2: talib.WMA}[ma_type]
    entries, exits = crossings(ma(close.to_numpy(), fast), ma(close.to_numpy(), slow))
    pf = vbt.Portfolio.from_signals(close, entries, exits, init_cash=100000.0, fees=fees,
                                    slippage=slippage_bps / 1e4, freq="1D")
    out = run_gtrader("backtest", "--data", path, "--strategy", "ma_cross", "--param", f"fast={fast}",
                      "--param", f"slow={slow}", "--param", f"ma_type={ma_type}", "--fill", "close",
                      "--commission", fees, "--slippage-bps", slippage_bps, "--json").stdout
    ours = json.loads(out)
    year = pd.Timedelta(days=252)  # daily bars, 252 a year: vectorbt's annualization with year_freq
    closed = pf.trades.closed
    theirs = dict(total_return=pf.total_return(), final_equity=pf.final_value(), trades=closed.count(),
                  win_rate=closed.win_rate(), profit_factor=closed.profit_factor(),
                  max_drawdown=-pf.max_drawdown(), cagr=pf.annualized_return(year_freq=year),
                  sharpe=pf.sharpe_ratio(year_freq=year), sortino=pf.sortino_ratio(year_freq=year),
                  calmar=pf.calmar_ratio(year_freq=year),
                  # vectorbt's trade return is over the entry's notional, ours over the capital committed
                  # with the entry's commission (docs/SEMANTICS.md): a factor 1 + fees apart.
                  avg_trade_return=closed.returns.mean() / (1 + fees))
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
