"""GPT-Trader: fast, exact backtests and parameter searches over a C++ core.

Local use needs nothing but NumPy and pandas; distribution runs on Ray
(``pip install 'gpt-trader[ray]'``). The seed system's names are kept:
``DistributedConfig``, ``RayDistributedEngine``, and for the LSTM/GRU signal models
``GPUAccelerator``, ``GPUConfig``, ``TradingNN``, ``ModelConfig``.
"""
from . import _core
from ._core import cuda_available, cuda_devices
from .data import as_bars, load
from .engine import WalkForwardResult, backtest, indicator, optimize, strategies, walk_forward
from .strategy import Strategy, evaluate
from .signal_arrays import SignalsResult, from_signals
from .distributed import DistributedConfig, OptimizationResult, RayDistributedEngine
from .ml import GPUAccelerator, GPUConfig, ModelConfig, TradingNN
from .live import LiveEngine, replay

__all__ = [
    "as_bars", "load", "backtest", "indicator", "optimize", "walk_forward", "WalkForwardResult", "strategies", "Strategy", "evaluate", "from_signals", "SignalsResult", "cuda_available", "cuda_devices",
    "DistributedConfig", "OptimizationResult", "RayDistributedEngine", "GPUAccelerator", "GPUConfig", "ModelConfig",
    "TradingNN", "LiveEngine", "replay", "_core",
]
__version__ = "0.1.0"
