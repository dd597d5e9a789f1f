"""Backtests of one's own signal arrays (docs/SEMANTICS.md "Signal arrays"): vectorbt's
`Portfolio.from_signals` idiom on the engine's fills and metrics."""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

from . import _core
from .data import DataLike, as_bars
from .engine import _checked_options, _json


def _signal_array(name: str, value, times, bars: int):
    """(array of booleans (bars, K) read in place when it can be, column labels or None)."""
    import pandas as pd

    labels = None
    if isinstance(value, (pd.DataFrame, pd.Series)):
        index = pd.DatetimeIndex(value.index) if not isinstance(value.index, pd.RangeIndex) else None
        if index is None or len(index) != len(times) or not (index == times).all():
            raise ValueError(f"{name}'s index does not align with the bars' times ({bars} bars from {times[0]} to "
                             f"{times[-1]}): index it by the data's times, or pass a NumPy array")
        if isinstance(value, pd.DataFrame):
            labels = list(value.columns)
            if any(value[c].isna().any() for c in value.columns):
                raise ValueError(f"{name} holds NaN: give True or False at every bar")
        elif value.isna().any():
            raise ValueError(f"{name} holds NaN: give True or False at every bar")
        value = value.to_numpy()
    array = np.asarray(value)
    if array.ndim == 1:
        array = array.reshape(-1, 1)  # a view
    if array.ndim != 2 or array.shape[0] != bars:
        raise ValueError(f"{name} must have shape ({bars},) or ({bars}, K) (one row per bar), not {array.shape}")
    if array.shape[1] == 0:
        raise ValueError(f"{name} has no columns (K = 0): give at least one")
    if array.dtype == np.bool_:
        return array, labels
    if np.issubdtype(array.dtype, np.integer):  # 0/1 integers, accepted explicitly (converted: one copy)
        if ((array != 0) & (array != 1)).any():
            raise ValueError(f"{name} is an integer array with values other than 0 and 1")
        return array != 0, labels
    if array.dtype == object or np.issubdtype(array.dtype, np.floating):
        what = "NaN" if np.issubdtype(array.dtype, np.floating) and np.isnan(array).any() else "values"
        raise ValueError(f"{name} must be booleans (or 0/1 integers), not dtype {array.dtype}"
                         + (" holding NaN" if what == "NaN" else ""))
    raise ValueError(f"{name} must be booleans (or 0/1 integers), not dtype {array.dtype}")


def _per_column_options(options: dict, columns: int) -> list[dict]:
    """Each option a value for every column or one per column (a list or array of K values)."""
    per_column = [dict() for _ in range(columns)]
    for name, value in options.items():
        if isinstance(value, (list, tuple, np.ndarray)):
            values = list(value)
            if len(values) != columns:
                raise ValueError(f"{name} has {len(values)} values for {columns} columns (give one, or one per column)")
        else:
            values = [value] * columns
        for k, v in enumerate(values):
            per_column[k][name] = v.item() if hasattr(v, "item") else v
    for k in range(columns):
        _checked_options(per_column[k], with_exits=True)
    return per_column


class SignalsResult:
    """What from_signals returns: `.metrics` (one row per column), `.trades` (every column's
    trades, made on first use) and `.equity(column)`."""

    def __init__(self, bars, arrays, columns: int, labels, options: list[dict]):
        import pandas as pd

        self._bars, self._arrays, self._columns, self._options = bars, arrays, columns, options
        self._labels = labels if labels is not None else list(range(columns))
        self._times = pd.to_datetime(np.asarray(bars.time), unit="s")
        one = [options[0]] if all(o == options[0] for o in options) else options
        metrics = _core.signal_metrics(bars, *arrays, columns, _json(one))
        frame = pd.DataFrame(metrics, index=pd.Index(self._labels, name="column"))
        frame["trades"] = frame["trades"].astype(np.int64)
        self.metrics = frame

    def _backtest(self, k: int) -> dict:
        return _core.signal_backtest(self._bars, *self._arrays, self._columns, k, _json(self._options[k]))

    def _position(self, column) -> int:
        if column in self._labels:
            return self._labels.index(column)
        raise KeyError(f"no column {column!r} (columns: {self._labels[:10]}{' ...' if len(self._labels) > 10 else ''})")

    def equity(self, column) -> "pd.Series":
        """The column's equity at every bar's close."""
        import pandas as pd

        return pd.Series(self._backtest(self._position(column))["equity"], index=self._times, name=column)

    @functools.cached_property
    def trades(self) -> "pd.DataFrame":
        """Every column's trades: column, entry_time, exit_time (NaT while open), side, entry_price,
        exit_price, units, pnl, return, bars_held, exit_reason."""
        import pandas as pd

        frames = []
        for k, label in enumerate(self._labels):
            t = self._backtest(k)["trades"]
            entry = np.asarray(t["entry_bar"]).astype(np.int64)
            exit_bar = np.asarray(t["exit_bar"])
            exit_time = pd.Series(pd.NaT, index=range(len(entry)), dtype="datetime64[ns]")
            closed = ~np.isnan(exit_bar)
            exit_time[closed] = self._times[exit_bar[closed].astype(np.int64)]
            frames.append(pd.DataFrame({
                "column": [label] * len(entry), "entry_time": self._times[entry], "exit_time": exit_time.to_numpy(),
                "side": np.where(np.asarray(t["side"]) > 0, "long", "short"), "entry_price": t["entry_price"],
                "exit_price": t["exit_price"], "units": t["units"], "pnl": t["pnl"], "return": t["return"],
                "bars_held": np.asarray(t["bars_held"]).astype(np.int64), "exit_reason": t["exit_reason"]}))
        return pd.concat(frames, ignore_index=True)


def from_signals(data: DataLike, entries, exits, short_entries=None, short_exits=None, **options: Any) -> SignalsResult:
    """Backtests of signal arrays, one per column: `entries`/`exits` (and optionally
    `short_entries`/`short_exits`) are booleans of shape (bars,) or (bars, K), or DataFrames/Series
    indexed by the data's times; column k is simulated as a strategy whose rules hold exactly where
    its arrays are true (entry while flat, exit while long; with allow_short, short rules likewise,
    or stop-and-reverse without them). Boolean NumPy arrays of any layout are read in place (no
    copy); 0/1 integer arrays are accepted and converted. Every execution option, and each exit by price
    and time (stop_loss, take_profit, trailing_stop, max_bars, risk), may be one value
    or one per column."""
    symbols = as_bars(data)
    if len(symbols) != 1:
        raise ValueError(f"from_signals takes one symbol's data, not {len(symbols)}")
    (bars,) = symbols
    if (short_entries is None) != (short_exits is None):
        raise ValueError("short_entries and short_exits go together: give both or neither")
    import pandas as pd

    times = pd.to_datetime(np.asarray(bars.time), unit="s")
    given = {"entries": entries, "exits": exits, "short_entries": short_entries, "short_exits": short_exits}
    arrays, labels = [], None
    for name, value in given.items():
        if value is None:
            arrays.append(None)
            continue
        array, names = _signal_array(name, value, times, len(bars))
        arrays.append(array)
        labels = labels if labels is not None else names
    # K is the entries' column count (or the widest array's, when entries is one column for all);
    # signals of one column with options of K values (stop_loss=[0.02, 0.05, 0.1]) are K columns,
    # one signal set tried with every value.
    columns = arrays[0].shape[1] if arrays[0].shape[1] > 1 else max(a.shape[1] for a in arrays if a is not None)
    if columns == 1:
        columns = max([len(v) for v in options.values() if isinstance(v, (list, tuple, np.ndarray))] + [1])
    for name, a in zip(given, arrays):
        if a is not None and a.shape[1] not in (1, columns):
            raise ValueError(f"{name} has {a.shape[1]} columns where entries has {columns} (give {columns}, or 1 "
                             "for every column)")
    if labels is not None and len(labels) != columns:
        labels = None
    return SignalsResult(bars, arrays, columns, labels, _per_column_options(options, columns))
