"""ICD-10 diagnosis codes as rule inputs (e.g. GB/T 42195 A.4.1 → rule R2).

A rule names inclusive ranges of three-character categories ("F00-F03"); a diagnosis matches when
its category (letter + two digits) falls in one. Sub-codes after the category (F03.900, F00.0*,
the national clinical extension F03.x00) are accepted and do not change the category.
"""
from __future__ import annotations

import re
from typing import Iterable

# The grammar is spelled out character by character (no \\s, no case folding) because the
# compiled scanner in kernels/score.pyx implements the same one by hand.
# A code: category (ASCII letter, two digits), an optional dot and 1-8 ASCII letters or digits,
# an optional dagger/asterisk mark. Letters may be lower case; the category is upper-cased.
_CODE = re.compile(r"^([A-Za-z][0-9]{2})(?:\.?[0-9A-Za-z]{1,8})?[*†+]?\Z")
# Separators seen in exported diagnosis cells: ASCII and full-width semicolons and commas, 顿号,
# ASCII white space, the ideographic space and the no-break space.
SEPARATORS = ";,；，、 \t\n\r\f\v\u3000\u00a0"
_SEPARATORS = re.compile("[" + re.escape(SEPARATORS) + "]+")
EXPECTED = "ICD-10 codes such as F03 or F00.1, separated by ';'"


def split(cell: str) -> list[str]:
    """Split a table cell of diagnosis codes into codes (a cell of separators → no codes)."""
    return [c for c in _SEPARATORS.split(cell) if c]


def category(code: str) -> str | None:
    """The three-character category of a code (upper case), or None when it is not an ICD-10 code."""
    found = _CODE.match(code)
    return found.group(1).upper() if found else None


def in_ranges(cat: str, ranges: Iterable[tuple[str, str]]) -> tuple[str, str] | None:
    """The first (low, high) range holding a category, or None."""
    for low, high in ranges:
        if low <= cat <= high:   # fixed width letter+2 digits, so text order is code order
            return low, high
    return None
