"""Frozen objects an instrument definition is built into.

They hold data only; :mod:`assess.instrument` builds them from files and checks them, and the
scorers read them. Option codes are kept in two forms: ``raw`` as written in the definition (an
int such as 4, or a string such as ``"0b"``) and ``key``, the canonical string used for lookups,
so that 4, "4" and 4.0 given as answers all mean the same option.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping, Union

from .errors import format_allowed


@dataclass(frozen=True)
class Text:
    zh: str
    en: str = ""

    def __str__(self) -> str:
        return self.zh

    def to_dict(self) -> dict:
        return {"zh": self.zh, "en": self.en} if self.en else {"zh": self.zh}


@dataclass(frozen=True)
class Option:
    raw: Union[int, str]
    key: str
    label: Text
    points: int | None = None   # scored items
    value: int | None = None    # rule-input fields that are counted (e.g. A.2.14 events)


@dataclass(frozen=True)
class Question:
    """Shared shape of a scored item and a rule-input field."""

    id: str
    label: Text
    options: tuple[Option, ...]
    required: bool = True
    description: Text | None = None
    required_unless: "Condition | None" = None   # required except while this holds (``required`` is then False)

    def option(self, key: str) -> Option | None:
        for opt in self.options:
            if opt.key == key:
                return opt
        return None

    @property
    def codes(self) -> list:
        return [o.raw for o in self.options]

    @cached_property
    def allowed_text(self) -> str:
        """The allowed codes as messages list them (:func:`format_allowed`), made once: a screening
        names every rejected answer with it."""
        return format_allowed(self.codes)


@dataclass(frozen=True)
class Item(Question):
    domain: str = ""
    skip_when: "Condition | None" = None   # skipped (counts 0, not required) while this holds

    @property
    def max_points(self) -> int:
        return max(o.points for o in self.options)

    @property
    def min_points(self) -> int:
        return min(o.points for o in self.options)


@dataclass(frozen=True)
class Field(Question):
    type: str = "code"   # "code" or "icd10_list" (rule inputs), or "text" (stored, never scored nor read)


@dataclass(frozen=True)
class Domain:
    id: str
    label: Text
    items: tuple[str, ...]


@dataclass(frozen=True)
class Score:
    """A derived score, computed from items, domains or earlier scores; null when a part is null.

    ``kind`` says how: ``sum`` (of ``sum``, the parts), ``max`` / ``min`` (of the parts), ``bands``
    (the value of the range that holds the one part: ``bands`` as (lo, hi, value)), ``matrix`` (the
    cell of ``cells`` indexed by the parts' values; ``axes`` gives each part's (lo, hi), cells are
    flat in row-major order, None where the table gives no value, with ``cell_reasons`` saying
    why), or ``cases`` (the value of the first case whose condition holds, else ``otherwise``).
    """

    id: str
    label: Text
    sum: tuple[str, ...]                 # the parts (for every kind but cases)
    clause: str = ""
    kind: str = "sum"
    bands: tuple = ()                    # (lo, hi, value)
    axes: tuple = ()                     # matrix: (lo, hi) per part
    cells: tuple = ()                    # matrix: int or None, row-major
    cell_reasons: Mapping = field(default_factory=dict)   # matrix: flat index → Text for a None cell
    cell_traces: Mapping = field(default_factory=dict)    # matrix: flat index → Text saying how it was set
    cases: tuple = ()                    # (value, Condition)
    otherwise: int | None = None
    value_labels: Mapping = field(default_factory=dict)   # value → Text (grades, matrix and case values)
    none_reason: Text | None = None      # cases: why no case holds on an ok assessment
    weights: tuple = ()                  # weighted: one integer weight per part (parts may be fields)

    @property
    def parts(self) -> tuple[str, ...]:
        return self.sum

    def cell_index(self, values) -> int | None:
        index = 0
        for v, (lo, hi) in zip(values, self.axes):
            if not lo <= v <= hi:
                return None
            index = index * (hi - lo + 1) + (v - lo)
        return index


@dataclass(frozen=True)
class Band:
    level: int
    min: int
    max: int
    label: Text


@dataclass(frozen=True)
class Unclassified:
    """Totals a band set declares unlabelled: no level, this reason, status ok (e.g. Katz Hartford 3, 5)."""

    min: int
    max: int
    reason: Text


@dataclass(frozen=True)
class OtherScale:
    """Codes of another scale of the same items: rejected as not allowed, naming that scale."""

    instrument: str
    keys: frozenset
    message: Text


@dataclass(frozen=True)
class Setting:
    name: str
    label: Text
    values: Mapping[str, Text]
    default: str | None
    status: str
    basis: str
    kind: str = "choice"   # "choice" among values, or "table" (a file the deploying office supplies)


# Conditions, with every ``by_setting`` already resolved for the settings in force.
@dataclass(frozen=True)
class AnyOf:
    conditions: tuple


@dataclass(frozen=True)
class AllOf:
    conditions: tuple


@dataclass(frozen=True)
class CodeIn:
    field: str
    keys: frozenset


@dataclass(frozen=True)
class ValueAtLeast:
    field: str
    at_least: int


@dataclass(frozen=True)
class ValueAtMost:
    field: str
    at_most: int


@dataclass(frozen=True)
class ScoreBetween:
    """A domain or derived score lies in [lo, hi]; never holds while the score is null."""

    score: str
    lo: int
    hi: int


@dataclass(frozen=True)
class SumAtLeast:
    fields: tuple[str, ...]
    at_least: int


@dataclass(frozen=True)
class CountBetween:
    """Between ``lo`` and ``hi`` of the conditions hold (MZ/T 039 "1–2 of M, S, P in {1, 2}")."""

    conditions: tuple
    lo: int
    hi: int


@dataclass(frozen=True)
class Never:
    """A condition that never holds (a setting's case in which a rule or skip does not apply)."""


@dataclass(frozen=True)
class Icd10In:
    field: str
    ranges: tuple[tuple[str, str], ...]   # inclusive 3-character category ranges, e.g. ("F00", "F03")


Condition = Union[AnyOf, AllOf, CountBetween, CodeIn, ValueAtLeast, ValueAtMost, ScoreBetween, SumAtLeast, Icd10In, Never]


@dataclass(frozen=True)
class Rule:
    id: str
    clause: str
    label: Text
    when: Condition
    raise_by: int = 0
    set_level: int | None = None
    flag: bool = False          # reported only; the level is not changed (e.g. PHQ-9 item 9 safety)

    @property
    def effect(self) -> str:
        if self.set_level is not None:
            return f"set_level {self.set_level}"
        return "flag" if self.flag else f"raise {self.raise_by}"


@dataclass(frozen=True)
class Category:
    """A classification reported beside the level: the first case that holds gives its value."""

    id: str
    label: Text
    clause: str
    cases: tuple            # (value, Text, Condition), in order
    otherwise: tuple | None  # (value, Text) or None

    def label_of(self, value: int) -> Text:
        for v, text, *_ in (*self.cases, *([self.otherwise] if self.otherwise else [])):
            if v == value:
                return text
        raise KeyError(value)


@dataclass(frozen=True)
class Constraint:
    id: str
    when: Condition
    message: Text


@dataclass(frozen=True)
class Instrument:
    """One version of one instrument, with the settings in force resolved into its rules."""

    id: str
    version: str
    title: Text
    direction: str
    source: Mapping
    effective_date: str | None
    region: str
    notes: tuple[Text, ...]
    items: tuple[Item, ...]
    fields: tuple[Field, ...]
    domains: tuple[Domain, ...]
    scores: tuple[Score, ...]
    level_score: str
    bands: tuple[Band, ...]
    rules: tuple[Rule, ...]
    raise_combination: str            # "max" or "sum"
    constraints: tuple[Constraint, ...]
    settings: Mapping[str, Setting]
    setting_values: Mapping[str, str | None]
    definition_hash: str
    path: str
    raw: Mapping = field(repr=False, compare=False, default_factory=dict)
    levels_clause: str = ""
    categories: tuple = ()            # Category
    unclassified: tuple = ()          # Unclassified spans of the band set in force
    other_scales: tuple = ()          # OtherScale
    tables: Mapping = field(default_factory=dict)   # table setting name → the office's table (parsed)

    def question(self, qid: str) -> Question | None:
        return self._questions.get(qid)

    @property
    def _questions(self) -> dict:
        cache = self.__dict__.get("_qcache")
        if cache is None:
            cache = {q.id: q for q in (*self.items, *self.fields)}
            object.__setattr__(self, "_qcache", cache)
        return cache

    @property
    def max_level(self) -> int:
        return max((b.level for b in self.bands), default=-1)   # -1: every total unclassified

    def band(self, level: int) -> Band:
        return next(b for b in self.bands if b.level == level)

    def unclassified_span(self, total: int) -> Unclassified | None:
        return next((u for u in self.unclassified if u.min <= total <= u.max), None)

    def with_settings(self, settings: Mapping | None = None, **kw) -> "Instrument":
        """The same instrument with some settings changed (names short or ``<id>.<name>``)."""
        from .instrument import build, read_tables  # the builder owns setting validation
        merged = {k: v for k, v in self.setting_values.items() if v is not None}
        merged.update(self.tables)   # tables in force are passed on as data, not by their recorded name
        merged.update(settings or {})
        merged.update(kw)
        return build(self.raw, self.path, settings=read_tables(self.raw, merged))

    @property
    def unset(self) -> tuple[str, ...]:
        """Settings with no default that were not given: scoring refuses until they are."""
        return tuple(n for n, v in self.setting_values.items()
                     if v is None and self.settings[n].kind != "table")   # no table: no level, said why

    def describe_settings(self) -> list[dict]:
        return [{"name": f"{self.id}.{s.name}", "value": self.setting_values[s.name], "default": s.default,
                 "status": s.status, "allowed": list(s.values) or ["<table file>"], "label": s.label.to_dict(),
                 "basis": s.basis, "kind": s.kind}
                for s in self.settings.values()]

    def __hash__(self):
        # Kept once worked out: instruments key many caches, some looked up per rejected row.
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.id, self.version, self.definition_hash, tuple(sorted(self.setting_values.items()))))
            object.__setattr__(self, "_hash", h)
        return h

    def __getstate__(self):
        # A str hash differs from process to process: another process works out its own.
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}
