"""The seed's moving-average crossover (docs/SEMANTICS.md "ma_cross") written for each peer tool, once, for the
peers benchmark and the parity tests alike."""
import backtrader as bt
import numpy as np
import talib

TIE = 1e-10  # include/gt/signal_rules.hpp: MAs this close (relative) are equal
MA_FUNCTIONS = {0: talib.SMA, 1: talib.EMA, 2: talib.WMA}


class BacktraderMaCross(bt.Strategy):
    """CrossOver of two moving averages, market orders at the next open. Sized at half the
    value so that backtrader never rejects an order on a gap (docs/SEMANTICS.md "Comparing with backtrader")."""

    params = dict(fast=10, slow=30, ma_type=0, volume_filter=False)

    def __init__(self):
        ma = {0: bt.indicators.SMA, 1: bt.indicators.EMA, 2: bt.indicators.WMA}[self.p.ma_type]
        self.cross = bt.indicators.CrossOver(ma(self.data.close, period=self.p.fast),
                                             ma(self.data.close, period=self.p.slow))
        self.volume_avg = bt.indicators.SMA(self.data.volume, period=20)
        self.fills = []  # fill dates, entries and exits alternating
        self.fill_prices = []  # their prices
        self.fill_units = []  # their sizes (units, positive)
        self.closed = []  # per closed trade: (pnl, pnl after commission)

    def notify_order(self, order):
        if order.status == order.Completed:
            self.fills.append(bt.num2date(order.executed.dt).date().isoformat())
            self.fill_prices.append(order.executed.price)
            self.fill_units.append(abs(order.executed.size))

    def notify_trade(self, trade):
        if trade.isclosed:
            self.closed.append((trade.pnl, trade.pnlcomm))

    def next(self):
        if not self.position:
            if self.cross[0] > 0 and (not self.p.volume_filter or self.data.volume[0] > self.volume_avg[0]):
                self.order_target_percent(target=0.5)
        elif self.cross[0] < 0:
            self.order_target_percent(target=0.0)


def fills_to_trades(fills):
    """[entry, exit, entry, exit, ...] fill dates -> [(entry, exit or '')]."""
    return [(fills[i], fills[i + 1] if i + 1 < len(fills) else "") for i in range(0, len(fills), 2)]


def crossings(fast, slow):
    """Cross-above and cross-below events of docs/SEMANTICS.md "ma_cross" on arrays (any shape, time on axis 0)."""
    above = fast - slow > TIE * np.abs(slow)
    below = slow - fast > TIE * np.abs(slow)
    defined = ~(np.isnan(fast) | np.isnan(slow))
    up = np.zeros_like(above)
    down = np.zeros_like(above)
    up[1:] = above[1:] & defined[:-1] & ~above[:-1]
    down[1:] = below[1:] & defined[:-1] & ~below[:-1]
    return up, down


def volume_ok(volume):
    avg = talib.SMA(volume.astype(float), 20)
    with np.errstate(invalid="ignore"):
        return volume > avg


def crossover_signals(frame, sample):
    """Entries and exits of docs/SEMANTICS.md "ma_cross" for each combination of `sample`
    ((fast, slow, ma_type, volume_filter, ...) tuples), as columns: TA-Lib's averages, the
    crossings as array operations."""
    close, volume = frame["Close"].to_numpy(float), frame["Volume"].to_numpy(float)
    averages = {(m, p): MA_FUNCTIONS[m](close, p) for f, s, m, *_ in sample for p in (f, s)}
    up, down = crossings(np.column_stack([averages[(c[2], c[0])] for c in sample]),
                         np.column_stack([averages[(c[2], c[1])] for c in sample]))
    with np.errstate(invalid="ignore"):
        busy = volume > MA_FUNCTIONS[0](volume, 20)
    filtered = np.array([c[3] for c in sample])[None, :]
    return up & (busy[:, None] | ~filtered), down
