"""The local engine: indicators, backtests and grid optimization on this machine's cores."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from . import _core
from .data import DataLike, as_bars, with_series
from .strategy import Strategy, resolve

if TYPE_CHECKING:
    import pandas as pd


# The execution options every backtest and optimization takes, from the library's one declaration
# of them (docs/SEMANTICS.md "Fills and costs"): checked here so that a wrong type is a TypeError
# naming the argument; their values are then read by the library's parser.
_ACCEPTS = {
    "choice": (lambda spec: " or ".join(repr(c) for c in spec["choices"].split(",")), lambda v: isinstance(v, str)),
    "number": (lambda spec: "a number", lambda v: _is_number(v)),
    "optional_number": (lambda spec: "a number or None", lambda v: v is None or _is_number(v)),
    "flag": (lambda spec: "True or False", lambda v: isinstance(v, (bool, np.bool_))),
}
EXECUTION_OPTIONS = {spec["name"]: (_ACCEPTS[spec["kind"]][0](spec), _ACCEPTS[spec["kind"]][1], spec)
                     for spec in _core.execution_options()}


# The exits by price and time and risk sizing (docs/SEMANTICS.md "Exits by price and time"):
# parameters every strategy has, which backtest() and optimize() also take as keyword arguments.
EXIT_PARAMS = {spec["name"]: spec for spec in _core.exit_params()}


def _split_exits(options: Mapping[str, Any], params: Mapping[str, Any], what: str) -> tuple[dict, dict]:
    """Keyword arguments as (parameters with the exits among them added, execution options)."""
    params, rest = dict(params), {}
    for name, value in options.items():
        if name not in EXIT_PARAMS:
            rest[name] = value
            continue
        if name in params:
            raise TypeError(f"{name} is given both as a keyword argument and in {what}: give it once")
        if not _is_number(value):
            raise TypeError(f"{name} must be a number (0 = off), not {type(value).__name__} {value!r}")
        params[name] = value
    return params, rest


def execution_options_doc() -> str:
    """The execution keyword arguments as documentation lines (made from the same declaration)."""
    return "\n".join(f"{name}: {spec['help']} (default {spec['default'] or 'inferred'})"
                      for name, (_, _, spec) in EXECUTION_OPTIONS.items())


def _json(value) -> str:
    """JSON text for the library, NumPy scalars as the Python numbers they hold."""
    return json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v))


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _checked_options(options: Mapping[str, Any], with_exits: bool = False) -> dict:
    for name, value in options.items():
        if with_exits and name in EXIT_PARAMS:
            if not _is_number(value):
                raise TypeError(f"{name} must be a number (0 = off), not {type(value).__name__} {value!r}")
            continue
        if name not in EXECUTION_OPTIONS:
            raise TypeError(f"unknown argument {name!r} (execution options: {', '.join(EXECUTION_OPTIONS)})")
        accepted, ok, _ = EXECUTION_OPTIONS[name]
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
    """A TA-Lib-exact indicator (docs/SEMANTICS.md "Indicators") over one symbol; columns as TA-Lib orders them."""
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


def backtest(data: DataLike, strategy: str | Strategy = "ma_cross", params: Mapping[str, Any] | None = None, *,
             series: Mapping[str, Any] | None = None, portfolio: bool = False, weights=None, rebalance: int = 0,
             **options) -> dict:
    """One backtest per symbol: metrics, trades (DataFrame) and the equity curve (Series).
    `strategy`: a name (see strategies()) or a Strategy; `series`: the user's own series its rules
    read, {name: values} (one value per bar, NaN where undefined) or {symbol: {name: values}}.
    The exits every strategy has (stop_loss, take_profit, trailing_stop, max_bars, risk) are
    parameters, also taken as keyword arguments; the trades' `exit_reason` says which closed each.
    `portfolio`: every symbol in one cash account (docs/SEMANTICS.md "Portfolios"), `weights` one
    per symbol (1/k each when None), `rebalance` every n-th timestamp (0: never); returns one
    result: metrics, equity (Series over the union of timestamps), values (DataFrame, a column per
    symbol), trades (DataFrame with a symbol column), contributions, skipped_entries."""
    import pandas as pd

    params, options = _split_exits(options, _checked_params(params), "params")
    options = _checked_options(options)
    symbols, names = with_series(as_bars(data), series)
    name, rules = resolve(strategy, names)
    allocation = _allocation(symbols, portfolio, weights, rebalance)
    if allocation is not None:
        return _portfolio(symbols, name, params, options, rules, allocation)
    results = {}
    for bars in symbols:
        r = _core.backtest(bars, name, _json(params), _json(options), _json(rules) if rules else "")
        index = pd.to_datetime(np.asarray(bars.time), unit="s")
        trades = pd.DataFrame(r["trades"])
        results[bars.symbol] = {"metrics": r["metrics"], "parameters": r["parameters"], "trades": trades,
                                "equity": pd.Series(r["equity"], index=index, name="equity"),
                                "position": pd.Series(r["position"], index=index, name="position")}
    return results


def _allocation(symbols, portfolio, weights, rebalance) -> dict | None:
    """A portfolio's allocation as the library reads it ({"weights": [...] or None, "rebalance":
    n}), or None without `portfolio`; `weights` a list in the symbols' order or {symbol: weight}."""
    if not portfolio:
        if weights is not None or rebalance:
            raise ValueError("weights and rebalance allocate a portfolio's cash: give portfolio=True too")
        return None
    if isinstance(weights, Mapping):  # by symbol
        unknown = set(weights) - {b.symbol for b in symbols}
        if unknown:
            raise ValueError(f"weights names {sorted(unknown)}, which are not among the symbols "
                             f"{[b.symbol for b in symbols]}")
        weights = [weights.get(b.symbol, 0.0) for b in symbols]
    return {"weights": None if weights is None else [float(w) for w in weights],
            "rebalance": _checked_count("rebalance", rebalance)}


def _portfolio(symbols, name, params, options, rules, allocation) -> dict:
    import pandas as pd

    r = _core.portfolio_backtest(symbols, name, _json(params), _json(options), _json(rules) if rules else "",
                                 allocation["weights"] or [], allocation["rebalance"])
    index = pd.to_datetime(np.asarray(r["time"]), unit="s")
    trades = pd.concat([pd.DataFrame(s["trades"]).assign(symbol=s["symbol"]) for s in r["symbols"]],
                       ignore_index=True)
    return {"metrics": r["metrics"], "parameters": r["parameters"],
            "equity": pd.Series(r["equity"], index=index, name="equity"),
            "values": pd.DataFrame({s["symbol"]: s["value"] for s in r["symbols"]}, index=index),
            "trades": trades[["symbol", *[c for c in trades.columns if c != "symbol"]]],
            "contributions": {s["symbol"]: s["contribution"] for s in r["symbols"]},
            "skipped_entries": r["skipped_entries"]}


def _param_grid_error(param_grid) -> TypeError:
    return TypeError(f"param_grid must be a dict such as {{'fast': range(5, 20), 'slow': '20:49'}}, not "
                     f"{type(param_grid).__name__} {param_grid!r}")


def study_request(strategy: str | Strategy, param_grid, *, fixed=None, metric="sharpe", top=10, min_trades=0,
                  threads=0, out=None, cache=None, device="cpu", gpus="all", force=False, series_names=(),
                  robustness=False, pbo_blocks=None, report=None, portfolio=None, search="grid", budget=None,
                  seed=None, **options) -> dict:
    """The library's study request (docs/SEMANTICS.md "Studies") from the keyword arguments that
    optimize() and RayDistributedEngine take, their types checked here by name; a Strategy's rules
    travel in it (workers anywhere compile them)."""
    name, rules = resolve(strategy, series_names)
    if isinstance(param_grid, list):
        grid = [str(item) for item in param_grid]
    elif isinstance(param_grid, Mapping):
        grid = grid_specs(param_grid)
    else:
        raise _param_grid_error(param_grid)
    fixed, options = _split_exits(options, _checked_params(fixed, "fixed"), "fixed")
    request = {"strategy": name, "grid": grid, "fixed": fixed, "metric": metric,
               "top": None if top is None else _checked_count("top", top),
               "min_trades": _checked_count("min_trades", min_trades), "threads": _checked_count("threads", threads),
               "device": device, "gpus": gpus, "force": bool(force), "execution": _checked_options(options)}
    if robustness:
        request["robustness"] = True
    if pbo_blocks is not None:
        request["pbo_blocks"] = _checked_count("pbo_blocks", pbo_blocks)
    if rules is not None:
        request["rules"] = rules
    if out is not None:
        request["out"] = str(out)
    if report is not None:
        request["report"] = str(report)
    if portfolio is not None:  # _allocation's form
        request["portfolio"] = portfolio
    if search != "grid" or budget is not None or seed is not None:
        request["search"] = str(search)
        if budget is not None:
            request["budget"] = _checked_count("budget", budget, 1)
        if seed is not None:
            request["seed"] = _checked_count("seed", seed)
    if cache is not None:
        request["cache"] = str(cache)
    return request


def optimize(data: DataLike, strategy: str | Strategy, param_grid: Mapping[str, Any], *,
             fixed: Mapping[str, Any] | None = None, metric: str = "sharpe", top: int = 10, min_trades: int = 0,
             threads: int = 0, out: str | None = None, cache: str | None = None, device: str = "cpu",
             gpus: str = "all", force: bool = False, series: Mapping[str, Any] | None = None,
             robustness: bool = False, pbo_blocks: int | None = None, report: str | None = None,
             portfolio: bool = False, weights=None, rebalance: int = 0, search: str = "grid",
             budget: int | None = None, seed: int | None = None, **options) -> tuple[pd.DataFrame, dict]:
    """Every combination on every symbol; returns (top combinations as a DataFrame, summary).
    `strategy`: a name or a Strategy (its rules run on the compiled rules engine); `series`: the
    user's own series its rules read (as backtest() takes them).
    `cache`: a folder or redis://[[user]:password@]host[:port][/db] holding results of earlier
    runs (the summary's `from_cache` counts what it served); None computes everything.
    `device`: "cpu", "cuda" (the GPU engine; fails when none is usable) or "auto" (CUDA when a GPU
    is present); `gpus`: "all" or ordinals such as "0,1". The summary's `device` says which ran.
    `robustness`: the summary's `robustness` lists, per symbol, the best combination's deflated
    Sharpe ratio and the grid's probability of backtest overfitting over `pbo_blocks` (16) blocks
    (docs/SEMANTICS.md "Out-of-sample evidence"; every combination is computed).
    `report`: an HTML file of the results (heatmap, distributions, the best; with robustness the
    panel of its evidence), as `gtrader optimize --report` writes it.
    `portfolio`: every symbol in one cash account, each combination ranked once for the whole
    portfolio (docs/SEMANTICS.md "Portfolios"; `weights` as backtest() takes them, `rebalance`
    every n-th timestamp).
    `search`: "grid" (every combination), or "random", "halving" or "bayes", which evaluate `budget`
    combinations of the grid's space (ranges as bounds with their step, lists as categories),
    reproducibly by `seed` (docs/SEMANTICS.md "Search"); the summary's `search` says what ran.
    A study whose estimated memory or disk use exceeds what the machine has free is refused (a
    ValueError saying what and how much) unless `force`. The execution options are keyword
    arguments (see execution_options_doc())."""
    import pandas as pd

    if not isinstance(param_grid, Mapping):
        raise _param_grid_error(param_grid)
    symbols, names = with_series(as_bars(data), series)
    request = study_request(strategy, param_grid, fixed=fixed, metric=metric, top=top, min_trades=min_trades,
                            threads=threads, out=out, cache=cache, device=device, gpus=gpus, force=force,
                            series_names=names, robustness=robustness, pbo_blocks=pbo_blocks, report=report,
                            portfolio=_allocation(symbols, portfolio, weights, rebalance), search=search,
                            budget=budget, seed=seed, **options)
    summary = _core.run_study(symbols, _json(request))
    for key in ("text", "json_text"):
        summary.pop(key)
    rows = [{"symbol": t["symbol"], **t["parameters"], **t["metrics"]} for t in summary.pop("top")]
    return pd.DataFrame(rows), summary


class WalkForwardResult:
    """What walk_forward returns: `.windows` (a DataFrame, one row per window: its train and test
    times, the chosen parameters, in-sample and out-of-sample metrics), `.equity` (the stitched
    out-of-sample equity, a Series), `.out_of_sample` (its metrics) and `.efficiency` (None when
    undefined)."""

    def __init__(self, raw: dict):
        import pandas as pd

        rows = []
        for w in raw["windows"]:
            row = {k: pd.Timestamp(w[k]) for k in ("train_start", "train_end", "test_start", "test_end")}
            row.update(w["parameters"])
            row.update({f"in_sample_{k}": v for k, v in w["in_sample"].items()})
            row.update({f"out_of_sample_{k}": v for k, v in w["out_of_sample"].items()})
            rows.append(row)
        self.windows = pd.DataFrame(rows)
        self.equity = pd.Series(raw["equity"], index=pd.to_datetime(np.asarray(raw["equity_time"]), unit="s"),
                                name="equity")
        self.out_of_sample = raw["out_of_sample"]
        self.efficiency = raw["efficiency"]
        self.symbol = raw["symbol"]


def walk_forward(data: DataLike, strategy: str | Strategy, param_grid: Mapping[str, Any], *, train: int, test: int,
                 anchored: bool = False, fixed: Mapping[str, Any] | None = None, metric: str = "sharpe",
                 min_trades: int = 0, threads: int = 0, series: Mapping[str, Any] | None = None,
                 cache: str | None = None, device: str = "cpu", out: str | None = None, equity: str | None = None,
                 report: str | None = None, **options) -> WalkForwardResult | dict:
    """Walk-forward (docs/SEMANTICS.md "Walk-forward"): the grid optimized on each window of `train`
    bars by `metric`, the best run on the `test` bars after it, stepping by `test` (rolling, or
    `anchored` at the first bar); the test windows chained. One symbol's data gives a
    WalkForwardResult; several give {symbol: WalkForwardResult}. `cache`: as optimize() takes it
    (a second walk-forward over the same data and grid computes nothing new); `out`, `equity`,
    `report`: the windows' CSV, the stitched equity's CSV and the HTML report, as `gtrader
    walkforward` writes them."""
    return walk_forward_results(walk_forward_run(data, strategy, param_grid, train=train, test=test, anchored=anchored,
                                                 fixed=fixed, metric=metric, min_trades=min_trades, threads=threads,
                                                 series=series, cache=cache, device=device, out=out, equity=equity,
                                                 report=report, executor=None, **options))


def walk_forward_results(raw: dict) -> WalkForwardResult | dict:
    """The library's walk-forward as walk_forward returns it: one symbol's WalkForwardResult, or
    {symbol: WalkForwardResult} for several."""
    results = {r["symbol"]: WalkForwardResult(r) for r in raw["results"]}
    return next(iter(results.values())) if len(results) == 1 else results


def walk_forward_run(data, strategy, param_grid, *, train, test, anchored=False, fixed=None, metric="sharpe",
                     min_trades=0, threads=0, series=None, cache=None, device="cpu", out=None, equity=None,
                     report=None, executor=None, **options) -> dict:
    """The library's walk-forward here or on a RangeExecutor (the Ray engine's): every symbol's
    result, and the text and JSON that `gtrader walkforward` prints."""
    if not isinstance(param_grid, Mapping):
        raise _param_grid_error(param_grid)
    symbols, names = with_series(as_bars(data), series)
    request = study_request(strategy, param_grid, fixed=fixed, metric=metric, top=1, min_trades=min_trades,
                            threads=threads, cache=cache, device=device, series_names=names, **options)
    return walk_forward_request(symbols, request, {"train": _checked_count("train", train),
                                                   "test": _checked_count("test", test), "anchored": bool(anchored),
                                                   "windows": "" if out is None else str(out),
                                                   "equity": "" if equity is None else str(equity),
                                                   "report": "" if report is None else str(report)}, executor)


def walk_forward_request(symbols: list, request: dict, walk_forward: dict, executor=None) -> dict:
    """A walk-forward of a library study request (its JSON form) on `symbols`."""
    return _core.walk_forward(symbols, _json(request), _json(walk_forward), executor)
