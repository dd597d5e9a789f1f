"""`gtrader optimize --engine ray` and `gtrader walkforward --engine ray` hand their study over to
this module: the study as the library's JSON request (parsed by the CLI, not parsed again here),
the walk-forward's windows and files for walkforward, the data inputs, and the Ray settings. The
library's runner does the rest with Ray as its executor, and prints what the CLI prints."""
from __future__ import annotations

import json
import sys

from . import _core
from .distributed import DistributedConfig, RayDistributedEngine


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        handover = json.loads(argv[0])
        data, ray = handover["data"], handover["ray"]
        symbols = _core.load_many(data["inputs"], data["skip_bad_rows"])
        config = DistributedConfig(num_workers=ray["workers"], address=ray["address"], chunk_size=ray["chunk_size"])
        with RayDistributedEngine(config) as engine:
            if "walk_forward" in handover:
                outcome = engine.run_walk_forward(symbols, handover["study"], handover["walk_forward"])
            else:
                outcome = engine.run_study(symbols, handover["study"])
    except (ValueError, ConnectionError, ImportError) as exc:  # the user's to fix: no traceback
        print(f"gtrader: error: {exc}", file=sys.stderr)
        return 2
    print(outcome["json_text"] if handover["json"] else outcome["text"], end="\n" if handover["json"] else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
