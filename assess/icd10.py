"""ICD-10 diagnosis codes as rule inputs (e.g. GB/T 42195 A.4.1 → rule R2).

A rule names inclusive ranges of three-character categories ("F00-F03"); a diagnosis matches when
its category (letter + two digits) falls in one. Sub-codes after the category (F03.900, F00.0*,
the national clinical extension F03.x00) are accepted and do not change the category.
"""
from __future__ import annotations

import re
from typing import Iterable

# Category, then an optional dot and sub-code, then an optional dagger/asterisk mark.
_CODE = re.compile(r"^([A-Z][0-9]{2})(?:\.?[0-9A-Z]{1,8})?[*†+]?$")
# Separators seen in exported diagnosis cells: ASCII and full-width semicolons and commas, 顿号, spaces.
_SEPARATORS = re.compile(r"[;；,，、\s]+")
EXPECTED = "ICD-10 codes such as F03 or F00.1, separated by ';'"


def split(cell: str) -> list[str]:
    """Split a table cell of diagnosis codes into codes (empty cell → no codes)."""
    return [c for c in _SEPARATORS.split(cell.strip()) if c]


def category(code: str) -> str | None:
    """The three-character category of a code, or None when it is not an ICD-10 code."""
    found = _CODE.match(code.strip().upper())
    return found.group(1) if found else None


def in_ranges(cat: str, ranges: Iterable[tuple[str, str]]) -> tuple[str, str] | None:
    """The first (low, high) range holding a category, or None."""
    for low, high in ranges:
        if low <= cat <= high:   # fixed width letter+2 digits, so text order is code order
            return low, high
    return None
