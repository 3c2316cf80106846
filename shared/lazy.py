"""Package exports imported on first use, so a light command does not load torch and MONAI.

`medfleet site approve` or `server run` only parse their arguments and talk to a process;
when every sub-command's package imported its heavy modules eagerly, each such call
spent ~7 s of CPU importing torch, MONAI and scikit-learn first (PEP 562 module
`__getattr__`, as MONAI's own optional imports defer theirs).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: each name in `exports` from its module.

    `exports` maps an exported name to the module that defines it; the module is imported
    when the name is first read, and the value is cached in the package.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__
