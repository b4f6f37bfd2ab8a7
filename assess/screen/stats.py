"""Running counts for the summary and the HTML report: levels overall and per region, score
distributions, problems by code. Everything is a small integer array updated per batch."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import idnumber
from .. import model as m
from .columns import REGION

NO_REGION = "（未填）"
NO_LEVEL = "未评定等级（该分数段无等级标签）"


@dataclass
class Stats:
    instrument: m.Instrument
    rows_read: int = 0
    scored: int = 0
    rejected: int = 0
    levels: np.ndarray = None
    no_level: int = 0             # scored rows whose band is unlabelled (e.g. Katz, Hartford convention)
    regions: dict = field(default_factory=dict)       # region code (text) → level counts
    scores: dict = field(default_factory=dict)        # domain / score id → counts per value
    errors: Counter = field(default_factory=Counter)      # code → problems
    warnings: Counter = field(default_factory=Counter)
    rejected_by_code: Counter = field(default_factory=Counter)   # code of each rejected row's first problem

    def __post_init__(self):
        n = self.instrument.max_level + 1
        self.levels = np.zeros(n, np.int64)
        for d in self.instrument.domains:
            top = sum(self.instrument.question(i).max_points for i in d.items)
            self.scores[d.id] = np.zeros(top + 1, np.int64)
        for s in self.instrument.scores:
            top = max((b.max for b in self.instrument.bands), default=0) if s.id == self.instrument.level_score else 0
            top = max(top, sum(len(v) - 1 for k, v in self.scores.items() if k in s.sum))
            self.scores[s.id] = np.zeros(top + 1, np.int64)

    def add_scored(self, out: pa.Table, keep: np.ndarray | None = None) -> None:
        """Count the rows of ``out`` (only those where ``keep`` is true, if given)."""
        n = out.num_rows if keep is None else int(keep.sum())
        if n == 0:
            return
        self.scored += n
        kept = slice(None) if keep is None else keep     # OUT's batches come filtered already
        level_col = out.column("level")
        level = _ints(level_col)[kept]
        has_level = None
        if level_col.null_count:    # no level: counted apart, not as level 0 (nulls read as 0 here)
            has_level = np.asarray(level_col.is_valid())[kept]
            self.no_level += int(level.size - np.count_nonzero(has_level))
        self.levels += np.bincount(level if has_level is None else level[has_level],
                                   minlength=self.levels.size)[: self.levels.size]
        for sid, counts in self.scores.items():
            counts += _clipped_counts(_ints(out.column(sid))[kept], counts.size)
        if REGION in out.column_names:
            reg = pc.fill_null(out.column(REGION).combine_chunks().cast(pa.string()), NO_REGION).dictionary_encode()
            k = self.levels.size
            idx = np.asarray(reg.indices)[kept]
            if has_level is not None:
                idx, level = idx[has_level], level[has_level]
            cells = np.bincount(idx * k + level, minlength=len(reg.dictionary) * k)
            for j, code in enumerate(reg.dictionary.to_pylist()):
                row = cells[j * k:(j + 1) * k]
                if not row.any():
                    continue
                if code in self.regions:
                    self.regions[code] += row
                else:
                    self.regions[code] = row.copy()

    def add_problems(self, records: list[dict]) -> None:
        first = {}
        for r in records:
            (self.errors if r["severity"] == "error" else self.warnings)[r["code"]] += 1
            if r["severity"] == "error":
                first.setdefault(r["line"], r["code"])
        self.rejected_by_code.update(first.values())

    def level_rows(self) -> list[tuple]:
        """(level, label, count, percent of scored)."""
        total = max(1, self.scored)
        rows = [(b.level, b.label.zh, int(self.levels[b.level]), 100.0 * self.levels[b.level] / total)
                for b in sorted(self.instrument.bands, key=lambda b: b.level)]
        if self.no_level:
            rows.append(("—", NO_LEVEL, self.no_level, 100.0 * self.no_level / total))
        return rows

    def to_dict(self) -> dict:
        return {
            "rows_read": self.rows_read, "scored": self.scored, "rejected": self.rejected,
            "levels": {str(lv): c for lv, _, c, _ in self.level_rows() if lv != "—"},
            "no_level": self.no_level,
            "regions": {k: [int(x) for x in v] for k, v in sorted(self.regions.items())},
            "errors": dict(sorted(self.errors.items())), "warnings": dict(sorted(self.warnings.items())),
        }


def _ints(col) -> np.ndarray:
    """The column's integers (nulls as 0), without a copy when it has one chunk and no nulls."""
    if isinstance(col, pa.ChunkedArray):
        col = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    return (col.fill_null(0) if col.null_count else col).to_numpy(zero_copy_only=False)


def _clipped_counts(v: np.ndarray, size: int) -> np.ndarray:
    """``np.bincount(np.clip(v, 0, size - 1), minlength=size)``: by the compiled loop
    (``_screen.add_counts``) without a copy for C-contiguous int8 and int32 arrays when the
    compiled module is there, else by numpy."""
    if idnumber._screen is not None and v.dtype in (np.int8, np.int32) and v.flags.c_contiguous:
        counts = np.zeros(size, np.int64)
        idnumber._screen.add_counts(v, counts)
        return counts
    if v.size and v.min() < 0:
        v = np.maximum(v, 0)
    counts = np.bincount(v, minlength=size)
    if counts.size > size:
        counts[size - 1] += counts[size:].sum()
    return counts[:size]
