"""Live signals from Python (docs/SEMANTICS.md "Live signals"): the same engine as `gtrader live`
and `gtrader replay`."""
from __future__ import annotations

from typing import Any, Mapping

from . import _core
from .data import DataLike, as_bars
from .engine import _checked_options, _checked_params, _json, _split_exits
from .strategy import Strategy, resolve


class LiveEngine:
    """Bars read from `bars_stream` on `redis` (redis://[[user]:password@]host[:port][/db])
    through the consumer group `group`, one state per symbol, and a message on `signals_stream`
    for every decision the backtest makes on the same bars, exactly once across crashes.
    `strategy`: a name or a Strategy; `params` its parameters (the exits among them, or as keyword
    arguments, as backtest() takes them); the other keyword arguments are the execution options.
    run() blocks until stop() (from another thread) or `idle_exit` seconds without a bar (0: never)
    and returns the counts: bars, decisions, dead_letters, warm_up, reconnects."""

    def __init__(self, redis: str, bars_stream: str, signals_stream: str, strategy: str | Strategy,
                 params: Mapping[str, Any] | None = None, *, group: str = "gtrader", idle_exit: float = 0,
                 **options):
        params, options = _split_exits(options, _checked_params(params), "params")
        name, rules = resolve(strategy, ())
        self._run = _core.LiveRun(str(redis), str(bars_stream), str(signals_stream), str(group), float(idle_exit),
                                  name, _json(params), _json(_checked_options(options)),
                                  _json(rules) if rules else "")

    def run(self) -> dict:
        return self._run.run()

    def stop(self) -> None:
        self._run.stop()


def replay(data: DataLike, redis: str, bars_stream: str, speed: float = 0) -> int:
    """Appends every symbol's bars to `bars_stream`, one message per bar, `speed` bars per second
    at most (0: as fast as Redis takes them); returns the messages written."""
    return sum(_core.replay(bars, str(redis), str(bars_stream), float(speed)) for bars in as_bars(data))
