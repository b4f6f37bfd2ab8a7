"""The public scoring API: one assessment (:func:`score_one`) or a table of them (:func:`score`).

This module is the only caller of a scoring backend. The compiled kernel is used when it is built;
the reference scorer otherwise, or always when ``ASSESS_PUREPYTHON=1``. Both give identical
results (tests/test_kernel_parity.py checks it row by row).
"""
from __future__ import annotations

from typing import Mapping

from . import _compiled, _reference
from . import model as m
from .errors import AnswerError, Code, SettingError, format_allowed, problem
from .instrument import load_instrument
from .result import Result

PUREPYTHON_ENV = _compiled.PUREPYTHON_ENV


def _load_backend():
    kernel, build = _compiled.load_kernel()
    return (kernel, "kernel", build) if kernel is not None else (None, "reference", None)


# backend: "kernel" or "reference"; kernel_build: which build of the kernel ("avx2", "baseline")
_kernel, backend, kernel_build = _load_backend()


def resolve(instrument, settings: Mapping | None = None) -> m.Instrument:
    """An Instrument from an id or an Instrument, with settings applied."""
    if settings is not None and not isinstance(settings, Mapping):
        raise TypeError(f"settings must be a mapping of setting name to value (or None), "
                        f"not {settings!r} ({type(settings).__name__})")
    if isinstance(instrument, m.Instrument):
        ins = instrument.with_settings(settings) if settings else instrument
    else:
        ins = load_instrument(str(instrument), settings=settings)
    require_settings(ins)
    return ins


def require_settings(ins: m.Instrument) -> None:
    """Refuse to score while a setting with no default has no value (e.g. WHODAS coding)."""
    if ins.unset:
        raise SettingError([problem(Code.SET_003, where=f"instrument {ins.id}", name=f"{ins.id}.{n}",
                                    basis=ins.settings[n].basis, allowed=format_allowed(ins.settings[n].values))
                            for n in ins.unset])


def score_one(instrument, answers: Mapping, *, settings: Mapping | None = None,
              allow_incomplete: bool = False) -> Result:
    """Score one assessment.

    ``answers`` maps item and field ids (``"B.1.1"``, ``"A.5.11"`` …) to option codes; ICD-10
    diagnosis fields take a list of codes. Unknown ids, codes an item does not allow and
    contradictory answers raise :class:`AnswerError` naming the item and what is allowed. A missing
    required answer raises too, unless ``allow_incomplete`` is set: then the result has
    ``status == "incomplete"``, the scores of the complete domains, and no level.
    """
    ins = resolve(instrument, settings)
    if not isinstance(answers, Mapping):
        raise TypeError("answers must be a mapping of item id to option code")
    ev = _reference.evaluate(ins, answers)
    fatal = [p for p in ev.problems if p.code is not Code.RESP_003]
    if fatal or (ev.status == _reference.INCOMPLETE and not allow_incomplete):
        raise AnswerError(fatal + [p for p in ev.problems if p.code is Code.RESP_003])
    return Result.from_evaluation(ev)


def score(instrument, table, *, settings: Mapping | None = None, threads: int | None = None):
    """Score a table of assessments: one row per assessment, one column per item or field id.

    Takes a pandas DataFrame or a pyarrow Table / RecordBatch and returns the same kind of table,
    of the same length and order (a DataFrame keeps its index), with domain scores, derived
    scores, ``level_initial``, ``level``, ``rules`` (bitmask in rule order) and one ``rule_<id>``
    flag per rule, ``status`` and ``error_field``. A bad row never stops the batch: its status
    says why it has no level. Columns the instrument does not read are ignored. ``threads``, a
    whole number (default: the machine's cores, or ``ASSESS_THREADS``), splits rows across
    threads in the compiled kernel; results do not depend on it.
    """
    from . import batch
    ins = resolve(instrument, settings)
    return batch.score_table(ins, table, _kernel, threads)
