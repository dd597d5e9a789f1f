"""The local engine: indicators, backtests and grid optimization on this machine's cores."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from . import _core
from .data import DataLike, as_bars

if TYPE_CHECKING:
    import pandas as pd


# The execution options every backtest and optimization takes (docs/SEMANTICS.md "Fills and costs"),
# with what each accepts: checked here so that a wrong type is a TypeError naming the argument.
EXECUTION_OPTIONS = {
    "fill": ("'next_open' or 'close'", lambda v: isinstance(v, str)),
    "commission": ("a number", lambda v: _is_number(v)),
    "slippage_bps": ("a number", lambda v: _is_number(v)),
    "size": ("a number", lambda v: _is_number(v)),
    "allow_short": ("True or False", lambda v: isinstance(v, (bool, np.bool_))),
    "cash": ("a number", lambda v: _is_number(v)),
    "periods_per_year": ("a number or None", lambda v: v is None or _is_number(v)),
}


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _checked_options(options: Mapping[str, Any]) -> dict:
    for name, value in options.items():
        if name not in EXECUTION_OPTIONS:
            raise TypeError(f"unknown argument {name!r} (execution options: {', '.join(EXECUTION_OPTIONS)})")
        accepted, ok = EXECUTION_OPTIONS[name]
        if not ok(value):
            raise TypeError(f"{name} must be {accepted}, not {type(value).__name__} {value!r}")
    return dict(options)


def _checked_params(params, what="params") -> dict:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise TypeError(f"{what} must be a dict of parameter values such as {{'fast': 10}}, not "
                        f"{type(params).__name__} {params!r}")
    return dict(params)


def _checked_count(name: str, value, minimum: int = 0) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, not {value!r}")
    return int(value)


def strategies() -> list[dict]:
    """Every strategy with its parameter schema (names, types, ranges, defaults)."""
    return _core.strategies()


def indicator(name: str, data: DataLike, **args) -> pd.DataFrame:
    """A TA-Lib-exact indicator (SPEC §2) over one symbol; columns as TA-Lib orders them."""
    import pandas as pd

    symbols = as_bars(data)
    if len(symbols) != 1:
        raise ValueError(f"indicator takes one symbol's data, not {len(symbols)}")
    (bars,) = symbols
    accepted = {"period", "fast", "slow", "signal", "nbdev", "fastk", "slowk", "slowd"}
    for key, value in args.items():
        if key not in accepted:
            raise TypeError(f"unknown argument {key!r} for indicator {name!r} (accepted: {', '.join(sorted(accepted))})")
        if key == "nbdev" and not _is_number(value):
            raise TypeError(f"nbdev must be a number, not {type(value).__name__} {value!r}")
        if key != "nbdev" and not isinstance(value, (int, np.integer)):
            raise TypeError(f"{key} must be a whole number, not {type(value).__name__} {value!r}")
    out = _core.indicator(name, bars, **args)
    return pd.DataFrame(out, index=pd.to_datetime(np.asarray(bars.time), unit="s"))


def grid_specs(param_grid: Mapping[str, Any]) -> list[str]:
    """{"fast": range(5, 20), "volume_filter": [False, True], "slow": "20:49"} -> ["fast=5:19", ...]."""
    specs = []
    for name, values in param_grid.items():
        if isinstance(values, str):
            specs.append(f"{name}={values}")
        elif isinstance(values, range):
            if len(values) == 0:
                raise ValueError(f"grid for '{name}' is empty")
            specs.append(f"{name}={values.start}:{values[-1]}:{values.step}")
        else:
            items = list(values) if hasattr(values, "__iter__") else [values]
            if not items:
                raise ValueError(f"grid for '{name}' is empty")
            text = lambda v: str(v).lower() if isinstance(v, (bool, np.bool_)) else repr(v.item() if hasattr(v, "item") else v)
            specs.append(f"{name}=" + ",".join(text(v) for v in items))
    return specs


def backtest(data: DataLike, strategy: str = "ma_cross", params: Mapping[str, Any] | None = None,
             **options) -> dict:
    """One backtest per symbol: metrics, trades (DataFrame) and the equity curve (Series)."""
    import pandas as pd

    params = _checked_params(params)
    options = _checked_options(options)
    results = {}
    for bars in as_bars(data):
        r = _core.backtest(bars, strategy, params, options)
        index = pd.to_datetime(np.asarray(bars.time), unit="s")
        trades = pd.DataFrame(r["trades"])
        results[bars.symbol] = {"metrics": r["metrics"], "parameters": r["parameters"], "trades": trades,
                                "equity": pd.Series(r["equity"], index=index, name="equity"),
                                "position": pd.Series(r["position"], index=index, name="position")}
    return results


def optimize(data: DataLike, strategy: str, param_grid: Mapping[str, Any], *, fixed: Mapping[str, Any] | None = None,
             metric: str = "sharpe", top: int = 10, min_trades: int = 0, threads: int = 0, out: str | None = None,
             cache: str | None = None, device: str = "cpu", gpus: str = "all", force: bool = False,
             **options) -> tuple[pd.DataFrame, dict]:
    """Every combination on every symbol; returns (top combinations as a DataFrame, summary).
    `cache`: a folder or redis://[[user]:password@]host[:port][/db] holding results of earlier
    runs (the summary's `from_cache` counts what it served); None computes everything.
    `device`: "cpu", "cuda" (the GPU engine; fails when none is usable) or "auto" (CUDA when a GPU
    is present); `gpus`: "all" or ordinals such as "0,1". The summary's `device` says which ran.
    A study whose estimated memory or disk use exceeds what the machine has free is refused (a
    ValueError saying what and how much) unless `force`."""
    import pandas as pd

    if not isinstance(param_grid, Mapping):
        raise TypeError(f"param_grid must be a dict such as {{'fast': range(5, 20), 'slow': '20:49'}}, not "
                        f"{type(param_grid).__name__} {param_grid!r}")
    top, min_trades, threads = (_checked_count("top", top), _checked_count("min_trades", min_trades),
                                _checked_count("threads", threads))
    fixed = _checked_params(fixed, "fixed")
    options = _checked_options(options)
    summary = _core.optimize(as_bars(data), strategy, grid_specs(param_grid), fixed, options,
                             metric=metric, top=top, min_trades=min_trades, threads=threads, out=out, cache=cache,
                             device=device, gpus=gpus, force=force)
    rows = [{"symbol": t["symbol"], **t["parameters"], **t["metrics"]} for t in summary.pop("top")]
    return pd.DataFrame(rows), summary
