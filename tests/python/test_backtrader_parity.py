"""SPEC §5 reproduces backtrader's trade list exactly: CrossOver of two moving averages, market
orders filled at the next open. Per SPEC §7 backtrader's orders are sized below the cash
(order_target_percent 0.5) and checksubmit is off, so that it never rejects one."""
import csv
import io

import backtrader as bt
import pandas as pd
import pytest

from conftest import DAILY_FILES, run_gtrader

MA_CLASSES = {0: bt.indicators.SMA, 1: bt.indicators.EMA, 2: bt.indicators.WMA}
PAIRS = [(10, 30), (5, 20), (19, 49)]


class MaCross(bt.Strategy):
    params = dict(fast=10, slow=30, ma_type=0, volume_filter=False)

    def __init__(self):
        ma = MA_CLASSES[self.p.ma_type]
        self.cross = bt.indicators.CrossOver(ma(self.data.close, period=self.p.fast),
                                             ma(self.data.close, period=self.p.slow))
        self.volume_avg = bt.indicators.SMA(self.data.volume, period=20)
        self.fills = []

    def notify_order(self, order):
        if order.status == order.Completed:
            self.fills.append(bt.num2date(order.executed.dt).date().isoformat())

    def next(self):
        if not self.position:
            if self.cross[0] > 0 and (not self.p.volume_filter or self.data.volume[0] > self.volume_avg[0]):
                self.order_target_percent(target=0.5)
        elif self.cross[0] < 0:
            self.order_target_percent(target=0.0)


def backtrader_fills(path, **params):
    cerebro = bt.Cerebro(stdstats=False)
    frame = pd.read_csv(path, parse_dates=["Date"], index_col="Date")
    cerebro.adddata(bt.feeds.PandasData(dataname=frame, openinterest=None))
    cerebro.addstrategy(MaCross, **params)
    cerebro.broker.set_checksubmit(False)
    cerebro.broker.setcash(100000.0)
    strategy = cerebro.run()[0]
    fills = strategy.fills
    return [(fills[i], fills[i + 1] if i + 1 < len(fills) else "") for i in range(0, len(fills), 2)]


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
