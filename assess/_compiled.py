"""Loading the compiled halves of the package, ``assess._kernel`` (kernels/score.pyx) and
``assess._screen`` (kernels/screen.pyx), and refusing a stale build.

Each extension states the interface it was built with as a module constant ``ABI``; this module
states the one the Python code expects. They differ when the Python code was updated (``git
pull``) and the extensions were not rebuilt: an older ``_screen`` then lacks functions the
screening calls, and used to fail mid-run with an AttributeError. Now the import says so at once.
Bump both numbers together whenever a compiled function is added, removed or changes signature.
"""
from __future__ import annotations

import importlib
import os

PUREPYTHON_ENV = "ASSESS_PUREPYTHON"
KERNEL_ABI = 1      # kernels/score.pyx ABI
SCREEN_ABI = 1      # kernels/screen.pyx ABI
REBUILD = "pip install -e . (or: python setup.py build_ext --inplace)"


class StaleBuild(ImportError):
    """A compiled extension built from other sources than this Python code expects."""


def forced_pure() -> bool:
    return os.environ.get(PUREPYTHON_ENV, "") not in ("", "0")


def load(name: str, expected: int):
    """``assess.<name>``, or None when ASSESS_PUREPYTHON=1 or it is not built; StaleBuild when it
    was built from other sources."""
    if forced_pure():
        return None
    try:
        module = importlib.import_module(f"assess.{name}")
    except ImportError:
        return None
    found = getattr(module, "ABI", None)
    if found != expected:
        raise StaleBuild(f"assess.{name} was built from other sources than this code (interface "
                         f"{found}, expected {expected}): rebuild it with {REBUILD}, or set "
                         f"{PUREPYTHON_ENV}=1 to run without the compiled code.")
    return module
