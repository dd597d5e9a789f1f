"""An independent reading of docs/SEMANTICS.md, written for the tests from first principles.

Nothing here calls or mirrors the engine's code: the built-in strategies' rules are read with
TA-Lib and NumPy, the account (fills, costs, shorts, size) is a plain loop over the bars, and the
metrics are recomputed in NumPy from what `gtrader backtest` writes (`--equity`, `--trades`).
A bug in the engine's shared code (indicator windows, signal rules, fills, metric formulas)
therefore shows up as a difference here instead of passing both sides of a comparison.
"""
import csv
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import talib

TIE = 1e-10  # docs/SEMANTICS.md "Crossovers": averages this close (relative) are equal


@dataclass
class Events:
    """Per-bar rule outcomes: long entry/exit, short entry/exit (boolean arrays)."""
    long_entry: np.ndarray
    long_exit: np.ndarray
    short_entry: np.ndarray
    short_exit: np.ndarray


def load_frame(path):
    frame = pd.read_csv(path)
    frame.columns = [c.strip().lower() for c in frame.columns]
    if "time" in frame.columns:
        frame["stamp"] = frame["date"].astype(str) + " " + frame["time"].astype(str)
    else:
        frame["stamp"] = frame["date"].astype(str)
    return frame


FRAMES = {}


def frame_of(path):
    """load_frame, read once per file for every test that asks."""
    if path not in FRAMES:
        FRAMES[path] = load_frame(path)
    return FRAMES[path]


def close_to(a, b, rel=1e-9, abs_=1e-9):
    import pytest

    return a == pytest.approx(b, rel=rel, abs=abs_)


def expect_trades_equal(ours, expected, stamps, columns=("side",)):
    """gtrader's trades (CSV rows) against the reference's: bars, `columns`, prices, units, pnl."""
    assert [(t["entry_time"], t["exit_time"], *(t[c] for c in columns)) for t in ours] == [
        (stamps[t["entry_bar"]], stamps[t["exit_bar"]] if "exit_bar" in t else "", *(t[c] for c in columns))
        for t in expected]
    for got, want in zip(ours, expected):
        assert close_to(float(got["entry_price"]), want["entry_price"], abs_=0)
        assert close_to(float(got["units"]), want["units"], abs_=0)
        assert int(got["bars_held"]) == want["bars_held"]
        if "exit_bar" in want:
            assert close_to(float(got["exit_price"]), want["exit_price"], abs_=0)
            assert close_to(float(got["pnl"]), want["pnl"], rel=1e-9, abs_=1e-6)
            assert close_to(float(got["return"]), want["ret"], rel=1e-9, abs_=1e-12)


def crossings(a, b):
    """Cross above / cross below with the tie band: both defined at t and t-1."""
    with np.errstate(invalid="ignore"):
        above = a - b > TIE * np.abs(b)
        below = b - a > TIE * np.abs(b)
    defined = ~(np.isnan(a) | np.isnan(b))
    up = np.zeros(len(a), dtype=bool)
    down = np.zeros(len(a), dtype=bool)
    up[1:] = above[1:] & defined[:-1] & ~above[:-1]
    down[1:] = below[1:] & defined[:-1] & ~below[:-1]
    return up, down


def crossover_events(a, b, entry_ok=None):
    up, down = crossings(a, b)
    ok = np.ones(len(a), dtype=bool) if entry_ok is None else entry_ok
    return Events(long_entry=up & ok, long_exit=down, short_entry=down & ok, short_exit=up)


def less(a, b):
    with np.errstate(invalid="ignore"):
        return np.asarray(a < b, dtype=bool)


def strategy_events(frame, strategy, params):
    """The built-in strategies' rules (`gtrader strategies`), read with TA-Lib and NumPy."""
    close = frame["close"].to_numpy(dtype=float)
    if strategy == "ma_cross":
        ma = {0: talib.SMA, 1: talib.EMA, 2: talib.WMA}[params.get("ma_type", 0)]
        ok = None
        if params.get("volume_filter", False):
            volume = frame["volume"].to_numpy(dtype=float)
            ok = less(talib.SMA(volume, 20), volume)
        return crossover_events(ma(close, params["fast"]), ma(close, params["slow"]), ok)
    if strategy == "macd_cross":
        macd, signal, _ = talib.MACD(close, params["fast"], params["slow"], params["signal"])
        return crossover_events(macd, signal)
    if strategy == "rsi_reversion":
        rsi = talib.RSI(close, params["period"])
        oversold, overbought = less(rsi, params["lower"]), less(params["upper"], rsi)
        return Events(long_entry=oversold, long_exit=overbought, short_entry=overbought, short_exit=oversold)
    if strategy == "bbands_reversion":
        upper, middle, lower = talib.BBANDS(close, params["period"], params["nbdev"], params["nbdev"], 0)
        return Events(long_entry=less(close, lower), long_exit=less(middle, close), short_entry=less(upper, close),
                      short_exit=less(close, middle))
    if strategy == "donchian_breakout":
        # The channel of the `k` bars before t: bar t itself is never in its own channel.
        def prior(series, k, how):
            rolled = pd.Series(frame[series].to_numpy(dtype=float)).rolling(k)
            return (rolled.max() if how == "max" else rolled.min()).shift(1).to_numpy()

        entry_high, entry_low = prior("high", params["entry"], "max"), prior("low", params["entry"], "min")
        exit_high, exit_low = prior("high", params["exit"], "max"), prior("low", params["exit"], "min")
        return Events(long_entry=less(entry_high, close), long_exit=less(close, exit_low),
                      short_entry=less(close, entry_low), short_exit=less(exit_high, close))
    raise ValueError(f"no reference reading of strategy {strategy!r}")


@dataclass
class Options:
    fill: str = "next_open"
    commission: float = 0.0
    slippage_bps: float = 0.0
    size: float = 1.0
    allow_short: bool = False
    cash: float = 100000.0

    def flags(self):
        out = ["--fill", self.fill, "--commission", repr(self.commission), "--slippage-bps", repr(self.slippage_bps),
               "--size", repr(self.size), "--cash", repr(self.cash)]
        return out + (["--allow-short"] if self.allow_short else [])


def wanted(events, current, t, allow_short):
    """The position the rules want after bar t from `current` (-1, 0, 1): a position stays unless its
    exit fires; flat (or closing), an entry opens one; a position being closed may reverse."""
    if current > 0 and not events.long_exit[t]:
        return 1
    if current < 0 and not events.short_exit[t]:
        return -1
    if current <= 0 and events.long_entry[t]:
        return 1
    return -1 if current >= 0 and allow_short and events.short_entry[t] else 0


def simulate(frame, events, o):
    """docs/SEMANTICS.md "Fills and costs" as a loop: returns (trades, equity, position)."""
    opens = frame["open"].to_numpy(dtype=float)
    closes = frame["close"].to_numpy(dtype=float)
    n = len(closes)
    slip = o.slippage_bps / 1e4
    c = o.commission
    cash, units = o.cash, 0.0
    trades, open_trade = [], None
    equity, position = np.zeros(n), np.zeros(n)

    def close_position(price, bar):
        nonlocal cash, units, open_trade
        t = open_trade
        if t["side"] == "long":
            fill = price * (1 - slip)
            fee = units * fill * c
            cash += units * fill - fee
            pnl = units * (fill - t["entry_price"]) - t["entry_fee"] - fee
        else:
            fill = price * (1 + slip)
            fee = -units * fill * c
            cash -= -units * fill + fee
            pnl = -units * (t["entry_price"] - fill) - t["entry_fee"] - fee
        t.update(exit_bar=bar, exit_price=fill, pnl=pnl, ret=pnl / t["committed"], bars_held=bar - t["entry_bar"])
        trades.append(t)
        units, open_trade = 0.0, None

    def open_position(side, price, bar):
        nonlocal cash, units, open_trade
        committed = o.size * cash
        if side == "long":
            fill = price * (1 + slip)
            units = committed / (fill * (1 + c))
            cash -= committed
            fee = units * fill * c
        else:
            fill = price * (1 - slip)
            sold = committed / (fill * (1 + c))
            fee = sold * fill * c
            cash += sold * fill - fee
            units = -sold
        open_trade = dict(side=side, entry_bar=bar, entry_price=fill, units=abs(units), committed=committed,
                          entry_fee=fee)

    def move_to(target, price, bar):
        if open_trade is not None:
            close_position(price, bar)
        if target != 0 and cash > 0:  # nothing to commit after a short lost more than its proceeds
            open_position("long" if target > 0 else "short", price, bar)

    pending = None
    ruined = False
    for t in range(n):
        if ruined:  # Ruin: nothing more is traded, the equity stays at 0
            continue
        current = int(np.sign(units))
        if pending is not None and pending != current:
            move_to(pending, opens[t], t)
        pending = None
        if cash + units * closes[t] <= 0:  # Ruin: out at this close, for good
            if open_trade is not None:
                close_position(closes[t], t)
            ruined = True
            continue
        current = int(np.sign(units))
        target = wanted(events, current, t, o.allow_short)
        if target != current:
            if o.fill == "close":
                move_to(target, closes[t], t)
            else:
                pending = target
        equity[t] = cash + units * closes[t]
        position[t] = units
    if open_trade is not None:
        open_trade.update(bars_held=n - open_trade["entry_bar"])
        trades.append(open_trade)
    return trades, equity, position


def periods_per_year(frame):
    """docs/SEMANTICS.md "Metrics": 252 for daily bars, 252 x bars per day for intraday."""
    stamps = pd.to_datetime(frame["stamp"])
    spacing = np.median(np.diff(stamps.to_numpy()).astype("timedelta64[s]").astype(float)) / 86400
    if spacing >= 1:
        return 252.0 if spacing <= 4 else (52.0 if spacing <= 10 else 12.0)
    return 252.0 * float(np.median(stamps.dt.normalize().value_counts().to_numpy()))


def metrics_from_outputs(equity_csv, trades_csv, cash, annual):
    """docs/SEMANTICS.md "Metrics" metrics from the columns gtrader writes, with NumPy's own statistics."""
    eq = pd.read_csv(io.StringIO(equity_csv))
    trades = pd.read_csv(io.StringIO(trades_csv), keep_default_na=False)
    equity = eq["equity"].to_numpy(dtype=float)
    before = np.concatenate([[cash], equity[:-1]])
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(before > 0, equity / before - 1, 0.0)  # after ruin the returns are 0
    n = len(r)
    growth = equity[-1] / cash
    cagr = growth ** (annual / n) - 1 if growth > 0 else -1.0
    std = np.std(r, ddof=1)
    sharpe = r.mean() / std * np.sqrt(annual) if std > 0 else 0.0
    downside = np.sqrt(np.mean(np.minimum(r, 0) ** 2))
    sortino = r.mean() / downside * np.sqrt(annual) if downside > 0 else 0.0
    peaks = np.maximum.accumulate(np.concatenate([[cash], equity]))[1:]
    max_drawdown = float(np.max(1 - equity / peaks))
    closed = trades[trades["exit_time"] != ""]
    pnl = closed["pnl"].astype(float).to_numpy()
    ret = closed["return"].astype(float).to_numpy()
    profit, loss = pnl[pnl > 0].sum(), -pnl[pnl < 0].sum()
    return dict(
        total_return=growth - 1, cagr=cagr, sharpe=sharpe, sortino=sortino, max_drawdown=max_drawdown,
        calmar=cagr / max_drawdown if max_drawdown > 0 else 0.0, trades=len(pnl),
        win_rate=float(np.mean(pnl > 0)) if len(pnl) else 0.0,
        profit_factor=(profit / loss if loss > 0 else (np.inf if profit > 0 else 0.0)),
        exposure=float(np.mean(eq["position"].to_numpy(dtype=float) != 0)),
        avg_trade_return=float(ret.mean()) if len(ret) else 0.0, final_equity=equity[-1])


def read_trades(trades_csv):
    return list(csv.DictReader(io.StringIO(trades_csv)))
