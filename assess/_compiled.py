"""Loading the compiled halves of the package, ``assess._kernel`` (kernels/score.pyx) and
``assess._screen`` (kernels/screen.pyx), and refusing a stale build.

The kernel is built twice on x86-64: for every processor (``_kernel``), and for those with AVX2
(``_kernel_avx2``, kernels/score_avx2.pyx), which :func:`load_kernel` prefers where the processor
runs it. ``ASSESS_KERNEL_BUILD=baseline`` keeps the first (to compare the two, or to rule the
second out of a problem).

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
KERNEL_BUILD_ENV = "ASSESS_KERNEL_BUILD"
KERNEL_BUILDS = ("auto", "baseline")
KERNEL_ABI = 4      # kernels/score.pyx ABI
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


def kernel_build_setting() -> str:
    """``ASSESS_KERNEL_BUILD``: auto (default) or baseline."""
    given = os.environ.get(KERNEL_BUILD_ENV, "").strip().lower() or "auto"
    if given not in KERNEL_BUILDS:
        raise ValueError(f"{KERNEL_BUILD_ENV}={given!r} is not a kernel build: give one of "
                         f"{', '.join(KERNEL_BUILDS)} (auto: the AVX2 build where the processor runs it)")
    return given


def load_kernel():
    """(module, build name) of the scoring kernel: the AVX2 build where it is built, the processor
    runs it and ``ASSESS_KERNEL_BUILD`` is not baseline; the baseline build otherwise; (None,
    None) when ASSESS_PUREPYTHON=1 or nothing is built."""
    setting = kernel_build_setting()
    kernel = load("_kernel", KERNEL_ABI)
    if kernel is None:
        return None, None
    # The baseline build asks the processor first: importing the other one runs its code.
    if setting == "auto" and kernel.cpu_has_avx2():
        faster = load("_kernel_avx2", KERNEL_ABI)
        if faster is not None:
            return faster, "avx2"
    return kernel, "baseline"
