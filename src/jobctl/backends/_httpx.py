"""httpx, without its own command line.

`import httpx` also imports `httpx._main` (the `httpx` console tool), which loads
Rich and Pygments when they are installed: about 45 ms of start-up that jobctl
never uses. A stand-in module keeps them unloaded. Only this process is affected,
and only when httpx has not been imported yet.
"""

from __future__ import annotations

import sys
import types

if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
    _stand_in = types.ModuleType("httpx._main")

    def _no_cli() -> None:
        raise RuntimeError("the httpx command line is not loaded inside jobctl")

    _stand_in.main = _no_cli  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = _stand_in

import httpx as httpx
