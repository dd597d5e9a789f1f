"""Market data in the forms quants hold it: CSV paths, folders, pandas DataFrames, engine Bars."""
from __future__ import annotations

import os
import pathlib
import sys
from typing import TYPE_CHECKING, Iterable, Mapping, Union

import numpy as np

from . import _core

if TYPE_CHECKING:
    import pandas as pd

DataLike = Union[str, os.PathLike, "pd.DataFrame", "_core.Bars", Mapping, Iterable]


def is_frame(data) -> bool:
    """Whether `data` is a pandas DataFrame, without importing pandas (about a second) to find out:
    no DataFrame exists unless its caller has imported pandas already."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(data, pandas.DataFrame)


def load(path: str | os.PathLike, skip_bad_rows: bool = False) -> "_core.Bars":
    """One validated CSV file (docs/SEMANTICS.md "Market data")."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path, not {type(path).__name__}")
    if pathlib.Path(path).is_dir():
        raise ValueError(f"{path} is a folder: gt.load reads one file; pass the folder itself to backtest or "
                         "optimize (every .csv in it), or gt.as_bars(folder)")
    return _core.load_csv(str(path), skip_bad_rows)


def _from_frame(symbol: str, frame: pd.DataFrame) -> "_core.Bars":
    import pandas as pd

    if isinstance(frame.columns, pd.MultiIndex):
        raise ValueError(f"{symbol}: the DataFrame's columns are a MultiIndex {list(frame.columns[:3])}... (as "
                         "yfinance gives several tickers): pass one ticker's frame, e.g. frame.xs('AAPL', axis=1, "
                         "level=1), or a dict {ticker: frame}")
    columns = {str(c).lower(): c for c in frame.columns}
    if isinstance(frame.index, pd.DatetimeIndex):
        stamps = frame.index
    else:
        key = next((columns[k] for k in ("datetime", "timestamp", "date") if k in columns), None)
        if key is None:
            raise ValueError(f"{symbol}: the DataFrame needs a DatetimeIndex or a Date/Datetime/Timestamp column")
        stamps = pd.DatetimeIndex(pd.to_datetime(frame[key]))
    missing = [c for c in ("open", "high", "low", "close", "volume") if c not in columns]
    if missing:
        raise ValueError(f"{symbol}: missing column(s) {', '.join(missing)} (need Open, High, Low, Close, Volume)")
    seconds = (stamps.tz_localize(None) if stamps.tz is not None else stamps).as_unit("s").asi8.astype(np.int64)
    intraday = bool((seconds % 86400 != 0).any())
    col = lambda name: np.ascontiguousarray(frame[columns[name]].to_numpy(dtype=float))
    return _core.bars_from_arrays(symbol, np.ascontiguousarray(seconds), col("open"), col("high"), col("low"),
                                  col("close"), col("volume"), intraday)


def as_bars(data: DataLike) -> list:
    """Every supported input as a list of Bars, one per symbol, in a stable order; symbol names
    must differ (a ValueError names the two inputs that share one)."""
    bars = _as_bars(data)
    if not bars:
        raise ValueError("no market data given: pass a CSV path, a folder, a DataFrame, Bars, or a dict or list of them")
    try:
        _core.require_distinct_symbols(bars)
    except ValueError as exc:
        raise ValueError(f"{exc}; in Python, pass a dict {{name: data}} to name each symbol") from None
    return bars


def _as_bars(data: DataLike) -> list:
    if isinstance(data, _core.Bars):
        return [data]
    if isinstance(data, (str, os.PathLike)):
        return _core.load_many([str(data)])  # a file, or every .csv (and .csv.gz) of a folder
    if is_frame(data):
        return [_from_frame(str(data.attrs.get("symbol", "data")), data)]
    if isinstance(data, Mapping):
        out = []
        for symbol, value in data.items():
            if is_frame(value):
                out.append(_from_frame(str(symbol), value))
                continue
            inner = _as_bars(value)
            # One series under a key takes the key as its name; a folder keeps its files' names.
            out.extend([_core.renamed(inner[0], str(symbol))] if len(inner) == 1 else inner)
        return out
    if isinstance(data, Iterable):
        return [b for item in data for b in _as_bars(item)]
    raise TypeError(f"unsupported market data of type {type(data).__name__} (accepted: a CSV path, a folder, a "
                    "DataFrame, Bars, or a dict or list of them)")


def with_series(symbols: list, series) -> tuple[list, list[str]]:
    """The bars with series of the user's own beside them (docs/SEMANTICS.md "Rules"), and their
    names. `series`: {name: values} for one symbol's data, or {symbol: {name: values}}; values are
    one number per bar in the bars' order, NaN where undefined (a NumPy array, a list or a pandas
    Series), checked like market data."""
    if series is None:
        return symbols, []
    if not isinstance(series, Mapping):
        raise TypeError(f"series must be a dict {{name: values}}, not {type(series).__name__}")
    if not all(isinstance(v, Mapping) for v in series.values()):
        if len(symbols) != 1:
            raise ValueError(f"series {{name: values}} are for one symbol's data, not {len(symbols)}: give "
                             "{symbol: {name: values}}")
        series = {symbols[0].symbol: series}
    known = [b.symbol for b in symbols]
    unknown = [s for s in series if s not in known]
    if unknown:
        raise ValueError(f"series for {', '.join(map(repr, unknown))}, which the data lack (symbols: {', '.join(known)})")
    names: list[str] = []
    out = []
    for bars in symbols:
        for name, values in series.get(bars.symbol, {}).items():
            array = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values)
            if array.ndim != 1 or array.dtype == bool or not np.issubdtype(array.dtype, np.number):
                raise ValueError(f"series {name!r} must be one number per bar (NaN where undefined), not an array of "
                                 f"shape {array.shape} and dtype {array.dtype}")
            bars = _core.with_series(bars, str(name), np.ascontiguousarray(array, dtype=float))
            names += [str(name)] if str(name) not in names else []
        out.append(bars)
    return out, names


def to_frame(bars: "_core.Bars") -> pd.DataFrame:
    """Bars as a DataFrame indexed by time (the columns are copies)."""
    import pandas as pd

    index = pd.to_datetime(np.asarray(bars.time), unit="s")
    return pd.DataFrame({"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close,
                         "Volume": bars.volume}, index=index)
