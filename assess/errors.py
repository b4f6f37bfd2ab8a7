"""The catalogue of stable error codes, and the exceptions that carry them.

Every problem the engine reports has a code from :class:`Code`. A code is never reused or renamed:
callers, reject files and other departments' systems match on it. Messages start with where the
problem is and end with what to do about it.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Code(enum.Enum):
    """Stable error codes: (title, message template)."""

    # Instrument definitions
    INSTR_001 = ("definition does not match the schema", "{where}: {detail}. Fix the definition file.")
    INSTR_002 = ("duplicate id", "{where}: id {id!r} is used more than once. Give each one a unique id.")
    INSTR_003 = ("unknown reference", "{where}: {kind} {id!r} is not defined. Allowed: {allowed}.")
    INSTR_004 = ("bands do not cover the score range",
                 "{where}: {detail}. Bands must be contiguous, must not overlap and must cover {lo}–{hi}.")
    INSTR_005 = ("setting default not allowed", "{where}: default {value!r} is not one of {allowed}.")
    INSTR_006 = ("unknown instrument", "instrument {id!r}{version} is not installed. Installed: {allowed}.")
    INSTR_007 = ("definition file cannot be read", "{where}: {detail}. Fix the file's YAML syntax.")
    INSTR_008 = ("band outside the reachable range",
                 "{where}: {detail}. Every band must be reachable within {lo}–{hi}.")
    # Answers (responses)
    RESP_001 = ("unknown item", "{where}: {item!r} is not an item or field of this instrument. "
                                "Remove it or check its id; known ids start {allowed}.")
    RESP_002 = ("code not allowed", "{where}, {item} {label}: code {value!r} is not allowed. Allowed: {allowed}.")
    RESP_003 = ("required item missing", "{where}, {item} {label}: no answer. Answer it with one of {allowed}.")
    RESP_004 = ("inconsistent answers", "{where}: {detail}")
    RESP_005 = ("malformed value", "{where}, {item} {label}: {value!r} is not {expected}. Give {expected}.")
    # Settings
    SET_001 = ("unknown setting", "{where}: setting {name!r} does not exist. Settings: {allowed}.")
    SET_002 = ("setting value not allowed", "{where}: setting {name!r} cannot be {value!r}. Allowed: {allowed}.")

    @property
    def title(self) -> str:
        return self.value[0]

    def format(self, **kw) -> str:
        return self.value[1].format(**kw)


@dataclass(frozen=True)
class Problem:
    """One located problem: a code, a message and where it is."""

    code: Code
    message: str
    where: str = ""
    item: str | None = None
    line: int | None = None

    def to_dict(self) -> dict:
        out = {"code": self.code.name, "title": self.code.title, "message": self.message}
        if self.item is not None:
            out["item"] = self.item
        if self.line is not None:
            out["line"] = self.line
        return out


def problem(code: Code, *, where: str = "", item: str | None = None, line: int | None = None, **kw) -> Problem:
    return Problem(code, code.format(where=where, item=item, **kw), where, item, line)


class AssessError(Exception):
    """Base of every error the engine raises on purpose. Carries one or more problems."""

    def __init__(self, problems: list[Problem] | Problem):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(p.message for p in self.problems))

    @property
    def code(self) -> Code:
        return self.problems[0].code

    def to_dict(self) -> dict:
        return {"error": self.code.name, "problems": [p.to_dict() for p in self.problems]}


class InstrumentError(AssessError, ValueError):
    """A definition file is broken, or an instrument is not installed."""


class AnswerError(AssessError, ValueError):
    """Answers to an instrument cannot be scored as given."""


class SettingError(AssessError, ValueError):
    """An instrument setting is unknown or given a value it does not allow."""


def format_allowed(values, limit: int = 12) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", … ({len(values)} in all)" if len(values) > limit else "")


__all__ = ["Code", "Problem", "problem", "AssessError", "InstrumentError", "AnswerError", "SettingError",
           "format_allowed"]
