"""docs/SEMANTICS.md "ma_cross" reproduces backtrader's trade list exactly: CrossOver of two moving averages, market
orders filled at the next open. Per docs/SEMANTICS.md "Comparing with backtrader" backtrader's orders are sized below the cash
(order_target_percent 0.5) and checksubmit is off, so that it never rejects one."""
import csv
import io
import sys

import backtrader as bt
import pandas as pd
import pytest

from conftest import DAILY_FILES, ROOT, run_gtrader

sys.path.insert(0, str(ROOT / "bench" / "peers"))
from peer_strategies import BacktraderMaCross, fills_to_trades  # noqa: E402

PAIRS = [(10, 30), (5, 20), (19, 49)]


def backtrader_run(path, commission=0.0, **params):
    cerebro = bt.Cerebro(stdstats=False)
    frame = pd.read_csv(path, parse_dates=["Date"], index_col="Date")
    cerebro.adddata(bt.feeds.PandasData(dataname=frame, openinterest=None))
    cerebro.addstrategy(BacktraderMaCross, **params)
    cerebro.broker.set_checksubmit(False)
    cerebro.broker.setcash(100000.0)
    cerebro.broker.setcommission(commission=commission)
    return cerebro.run()[0]


def backtrader_fills(path, **params):
    return fills_to_trades(backtrader_run(path, **params).fills)


def gtrader_fills(path, tmp_path, **params):
    trades = tmp_path / "trades.csv"
    args = [f"{k}={str(v).lower()}" for k, v in params.items()]
    run_gtrader("backtest", "--data", path, "--strategy", "ma_cross", *sum([["--param", a] for a in args], []),
                "--trades", trades)
    rows = list(csv.DictReader(io.StringIO(trades.read_text())))
    return [(r["entry_time"], r["exit_time"]) for r in rows]


@pytest.mark.parametrize("path", DAILY_FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("ma_type", [0, 1, 2], ids=["SMA", "EMA", "WMA"])
@pytest.mark.parametrize("volume_filter", [False, True], ids=["all", "volume"])
@pytest.mark.parametrize("fast,slow", PAIRS, ids=lambda v: str(v))
def test_trade_dates_equal_backtrader(path, ma_type, volume_filter, fast, slow, tmp_path):
    params = dict(fast=fast, slow=slow, ma_type=ma_type, volume_filter=volume_filter)
    ours = gtrader_fills(path, tmp_path, **params)
    theirs = backtrader_fills(path, **params)
    assert len(ours) > 10
    assert ours == theirs


@pytest.mark.parametrize("path", DAILY_FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("ma_type", [0, 1, 2], ids=["SMA", "EMA", "WMA"])
@pytest.mark.parametrize("commission", [0.0, 0.001])
def test_fill_prices_and_pnl_per_unit_equal_backtrader(path, ma_type, commission, tmp_path):
    """Fill prices are the next opens in both; backtrader's orders are sized at half the value
    (docs/SEMANTICS.md "Comparing with backtrader"), ours commit all equity, so P&L is compared per unit: exit - entry less both
    commissions, which both charge on each side's notional."""
    params = dict(fast=10, slow=30, ma_type=ma_type, volume_filter=False)
    theirs = backtrader_run(path, commission=commission, **params)
    trades = tmp_path / "trades.csv"
    run_gtrader("backtest", "--data", path, "--strategy", "ma_cross", "--param", "fast=10", "--param", "slow=30",
                "--param", f"ma_type={ma_type}", "--commission", commission, "--trades", trades)
    ours = list(csv.DictReader(io.StringIO(trades.read_text())))
    closed = [t for t in ours if t["exit_time"]]
    assert len(closed) == len(theirs.closed) > 10
    prices = theirs.fill_prices
    for i, t in enumerate(ours):
        assert float(t["entry_price"]) == pytest.approx(prices[2 * i], rel=1e-12)
        if t["exit_time"]:
            assert float(t["exit_price"]) == pytest.approx(prices[2 * i + 1], rel=1e-12)
    for t, (pnl, pnl_after_commission), units in zip(closed, theirs.closed, theirs.fill_units[0::2]):
        assert float(t["pnl"]) / float(t["units"]) == pytest.approx(pnl_after_commission / units, rel=1e-9, abs=1e-9)
        gross = float(t["exit_price"]) - float(t["entry_price"])
        assert pnl / units == pytest.approx(gross, rel=1e-9, abs=1e-9)
        # return: pnl over the committed capital, commission of the entry included
        committed = float(t["units"]) * float(t["entry_price"]) * (1 + commission)
        assert float(t["return"]) == pytest.approx(pnl_after_commission / units * float(t["units"]) / committed,
                                                   rel=1e-9, abs=1e-12)
