"""The exception ``assess screen`` raises for a file it cannot process at all."""
from __future__ import annotations

from ..errors import AssessError


class ScreenError(AssessError, ValueError):
    """A screening file cannot be read, recognised or written (codes FILE_xxx)."""
