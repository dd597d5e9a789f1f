"""SPEC §5 reproduces backtrader's trade list exactly: CrossOver of two moving averages, market
orders filled at the next open. Per SPEC §7 backtrader's orders are sized below the cash
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


def backtrader_fills(path, **params):
    cerebro = bt.Cerebro(stdstats=False)
    frame = pd.read_csv(path, parse_dates=["Date"], index_col="Date")
    cerebro.adddata(bt.feeds.PandasData(dataname=frame, openinterest=None))
    cerebro.addstrategy(BacktraderMaCross, **params)
    cerebro.broker.set_checksubmit(False)
    cerebro.broker.setcash(100000.0)
    return fills_to_trades(cerebro.run()[0].fills)


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
