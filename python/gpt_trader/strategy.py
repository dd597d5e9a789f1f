"""Strategies written as rules (docs/SEMANTICS.md "Rules"): accepted wherever a strategy name is."""
from __future__ import annotations

import copy
import json
import os
from typing import Any, Iterable, Mapping

import numpy as np

from . import _core

_TYPES = {"int", "float", "bool"}


def _param_spec(name: str, value: Any) -> dict:
    """A parameter from a plain value (its type read off the value, its range unbounded) or from a
    dict {type, default, min, max, doc} as a strategy file writes it."""
    if isinstance(value, Mapping):
        unknown = set(value) - {"type", "default", "min", "max", "doc"}
        if unknown or "type" not in value or "default" not in value:
            raise ValueError(f"parameter {name!r}: give {{'type': 'int'|'float'|'bool', 'default': ..., 'min': ..., "
                             f"'max': ..., 'doc': ...}} (type and default required), not {dict(value)!r}")
        if value["type"] not in _TYPES:
            raise ValueError(f"parameter {name!r}: type {value['type']!r} (allowed: int, float, bool)")
        spec = {"name": name, "type": value["type"], "default": value["default"], "doc": str(value.get("doc", ""))}
        for bound in ("min", "max"):
            if bound in value:
                spec[bound] = value[bound]
        return spec
    if isinstance(value, (bool, np.bool_)):
        return {"name": name, "type": "bool", "default": bool(value), "doc": ""}
    if isinstance(value, (int, np.integer)):
        return {"name": name, "type": "int", "default": int(value), "doc": ""}
    if isinstance(value, (float, np.floating)):
        return {"name": name, "type": "float", "default": float(value), "doc": ""}
    raise TypeError(f"parameter {name!r} must be an int, float or bool default, or a dict with its type, not "
                    f"{type(value).__name__} {value!r}")


class Strategy:
    """A strategy written as rules: boolean expressions over open, high, low, close, volume, the
    parameters, TA-Lib-exact functions (sma, ema, rsi, atr, macd, bb_upper, cross_above, ...) and
    series of one's own, evaluated at every bar in three-valued logic.

        Strategy(entry="cross_above(ema(close, fast), sma(close, slow)) and rsi(close, 14) < 70",
                 exit="cross_below(ema(close, fast), sma(close, slow))",
                 params={"fast": 12, "slow": 40}, constraints=["fast < slow"])

    `params` maps each name to its default (int, float or bool: the type follows) or to
    {type, default, min, max, doc}. `series` names series of one's own the rules read; they are
    given with the data (`series=` of backtest/optimize), which also declares them. The rules are
    checked here: a mistake is a ValueError naming the rule, column and fault."""

    def __init__(self, entry: str, exit: str, params: Mapping[str, Any] | None = None, *,
                 short_entry: str | None = None, short_exit: str | None = None,
                 constraints: Iterable[str] = (), name: str = "rules", description: str = "",
                 series: Iterable[str] = ()):
        for what, text in (("entry", entry), ("exit", exit), ("short_entry", short_entry),
                           ("short_exit", short_exit)):
            if text is not None and not isinstance(text, str):
                raise TypeError(f"{what} must be a rule (str), not {type(text).__name__} {text!r}")
        if params is not None and not isinstance(params, Mapping):
            raise TypeError(f"params must be a dict such as {{'fast': 10}}, not {type(params).__name__} {params!r}")
        if isinstance(constraints, str):
            constraints = [constraints]
        self._set({"name": str(name), "description": str(description),
                   "params": [_param_spec(str(k), v) for k, v in (params or {}).items()],
                   "entry": entry, "exit": exit, "short_entry": short_entry or "", "short_exit": short_exit or "",
                   "constraints": [str(c) for c in constraints], "series": [str(s) for s in series],
                   "source": str(name)})

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "Strategy":
        """A strategy file (YAML: name, description, params, entry, exit, short_entry, short_exit,
        constraints, series), as `gtrader --strategy-file` reads it."""
        strategy = cls.__new__(cls)
        strategy._set(json.loads(_core.read_strategy_file(os.fspath(path))))
        return strategy

    def _set(self, rules: dict) -> None:
        self._schema = _core.compile_rules(json.dumps(rules))  # checked now, before any data
        self._rules = rules

    def with_series(self, names: Iterable[str]) -> "Strategy":
        """The same rules, also reading these series of one's own."""
        rules = copy.deepcopy(self._rules)
        rules["series"] += [n for n in names if n not in rules["series"]]
        strategy = Strategy.__new__(Strategy)
        strategy._set(rules)
        return strategy

    @property
    def name(self) -> str:
        return self._rules["name"]

    @property
    def params(self) -> list[dict]:
        """The parameter schema: name, type, min, max, default, help."""
        return self._schema["params"]

    @property
    def rules(self) -> dict:
        """The rules as the library's JSON form (what studies carry to Ray workers)."""
        return copy.deepcopy(self._rules)

    @property
    def canonical(self) -> str:
        """Every rule reprinted from its parse: what identifies the signals (cache keys hold it)."""
        return self._schema["canonical"]

    def __repr__(self) -> str:
        params = ", ".join(f"{p['name']}: {p['type']}" for p in self.params)
        return f"Strategy({self.name!r}, entry={self._rules['entry']!r}, exit={self._rules['exit']!r}, params={{{params}}})"


def evaluate(expression: str, data, params: Mapping[str, Any] | None = None, *,
             series: Mapping[str, Any] | None = None):
    """One rule expression over one symbol's bars, as a pandas Series indexed by time: numbers as
    numbers, conditions as 1.0 / 0.0, NaN where undefined (docs/SEMANTICS.md "Rules"). `params`
    gives each parameter's value (its type follows the value); `series` the user's own series.

        evaluate("rsi(close, n) < 30 and close > sma(close, 200)", "orcl.csv", {"n": 14})"""
    import pandas as pd

    from .data import as_bars, with_series
    from .engine import _json

    if not isinstance(expression, str):
        raise TypeError(f"expression must be a str, not {type(expression).__name__}")
    symbols, names = with_series(as_bars(data), series)
    if len(symbols) != 1:
        raise ValueError(f"evaluate takes one symbol's data, not {len(symbols)}")
    (bars,) = symbols
    params = dict(params or {})
    context = {"params": [_param_spec(str(k), v) for k, v in params.items()], "series": names,
               "entry": "", "exit": "", "source": "expression"}
    values = _core.evaluate_expression(bars, json.dumps(context), expression, _json(params))
    return pd.Series(values, index=pd.to_datetime(np.asarray(bars.time), unit="s"), name=expression)


def resolve(strategy, series_names: Iterable[str] = ()) -> tuple[str, dict | None]:
    """(name, rules JSON or None) for a strategy name or a Strategy; a Strategy also declares the
    series given with the data."""
    names = list(series_names)
    if isinstance(strategy, Strategy):
        return strategy.name, strategy.with_series(names).rules if names else strategy.rules
    if isinstance(strategy, str):
        if names:
            raise ValueError(f"series ({', '.join(names)}) are read by rules; the built-in strategy {strategy!r} "
                             "reads none: pass a gpt_trader.Strategy whose rules name them")
        return strategy, None
    raise TypeError(f"strategy must be a name (see gpt_trader.strategies()) or a gpt_trader.Strategy, not "
                    f"{type(strategy).__name__} {strategy!r}")
