"""The local engine: indicators, backtests and grid optimization on this machine's cores."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from . import _core
from .data import DataLike, as_bars

if TYPE_CHECKING:
    import pandas as pd


def strategies() -> list[dict]:
    """Every strategy with its parameter schema (names, types, ranges, defaults)."""
    return _core.strategies()


def indicator(name: str, data: DataLike, **args) -> pd.DataFrame:
    """A TA-Lib-exact indicator (SPEC §2) over one symbol; columns as TA-Lib orders them."""
    import pandas as pd

    (bars,) = as_bars(data)
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

    results = {}
    for bars in as_bars(data):
        r = _core.backtest(bars, strategy, dict(params or {}), options)
        index = pd.to_datetime(np.asarray(bars.time), unit="s")
        trades = pd.DataFrame(r["trades"])
        results[bars.symbol] = {"metrics": r["metrics"], "parameters": r["parameters"], "trades": trades,
                                "equity": pd.Series(r["equity"], index=index, name="equity"),
                                "position": pd.Series(r["position"], index=index, name="position")}
    return results


def optimize(data: DataLike, strategy: str, param_grid: Mapping[str, Any], *, fixed: Mapping[str, Any] | None = None,
             metric: str = "sharpe", top: int = 10, min_trades: int = 0, threads: int = 0, out: str | None = None,
             cache: str | None = None, device: str = "cpu", gpus: str = "all",
             **options) -> tuple[pd.DataFrame, dict]:
    """Every combination on every symbol; returns (top combinations as a DataFrame, summary).
    `cache`: a folder or redis://[[user]:password@]host[:port][/db] holding results of earlier
    runs (the summary's `from_cache` counts what it served); None computes everything.
    `device`: "cpu", "cuda" (the GPU engine; fails when none is usable) or "auto" (CUDA when a GPU
    is present); `gpus`: "all" or ordinals such as "0,1". The summary's `device` says which ran."""
    import pandas as pd

    summary = _core.optimize(as_bars(data), strategy, grid_specs(param_grid), dict(fixed or {}), options,
                             metric=metric, top=top, min_trades=min_trades, threads=threads, out=out, cache=cache,
                             device=device, gpus=gpus)
    rows = [{"symbol": t["symbol"], **t["parameters"], **t["metrics"]} for t in summary.pop("top")]
    return pd.DataFrame(rows), summary
