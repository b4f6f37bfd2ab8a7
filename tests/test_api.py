"""The public surface: assess.__all__, the error-code catalogue and the backend switch."""
from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import types

import pytest

import assess
from assess.errors import Code

# The API that issue 2 declares stable (list_instruments, load_instrument, score_one, Result …).
PUBLIC = {
    "__version__", "AnswerError", "AssessError", "Instrument", "InstrumentError", "InstrumentRef", "Result",
    "SettingError", "backend", "list_instruments", "load_instrument", "load_path", "score", "score_one",
}


def test_all_is_exactly_the_public_names():
    """__all__ lists every public name the package exports, and nothing else."""
    assert len(assess.__all__) == len(set(assess.__all__)), "duplicates in __all__"
    exported = {n for n, v in vars(assess).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert set(assess.__all__) - {"__version__"} == exported
    assert "__version__" in assess.__all__


def test_foundation_api_is_kept():
    """The names issue 2 declared stable stay exported (later issues may add names)."""
    assert PUBLIC <= set(assess.__all__)


@pytest.mark.parametrize("name", sorted(assess.__all__))
def test_each_public_name_exists(name):
    assert hasattr(assess, name)
    obj = getattr(assess, name)
    if name in PUBLIC - {"__version__", "backend"}:
        assert callable(obj)


def test_star_import():
    ns: dict = {}
    exec("from assess import *", ns)
    assert set(assess.__all__) - {"__version__"} <= set(ns)


def test_score_is_the_function():
    assert callable(assess.score) and assess.score.__name__ == "score"
    assert assess.score_one.__module__ == "assess.score"


def test_version_matches_metadata():
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", assess.__version__)
    assert importlib.metadata.version("assess") == assess.__version__


def test_exception_hierarchy():
    for exc in (assess.InstrumentError, assess.AnswerError, assess.SettingError):
        assert issubclass(exc, assess.AssessError) and issubclass(exc, ValueError)
    assert issubclass(assess.AssessError, Exception)


def test_error_codes_are_stable_and_distinct():
    names = list(Code.__members__)
    assert len(names) == len(list(Code)), "two codes share a (title, message): one is an alias of the other"
    for name, code in Code.__members__.items():
        assert re.fullmatch(r"[A-Z]+_\d{3}", name), name
        assert code.title, name
        # messages begin with the location (STYLE §2.6); an unknown instrument has no file to point at
        assert code.value[1].startswith("{where}") or name == "INSTR_006", name
    # codes issue 2 relies on (never renamed or reused)
    for name in ("INSTR_001", "INSTR_002", "INSTR_003", "INSTR_004", "INSTR_005", "INSTR_006", "INSTR_007",
                 "INSTR_008", "RESP_001", "RESP_002", "RESP_003", "RESP_004", "RESP_005", "SET_001", "SET_002"):
        assert name in Code.__members__


def test_error_to_dict():
    with pytest.raises(assess.AnswerError) as info:
        assess.score_one("gbt42195-2022", {"B.1.1": 9})
    d = info.value.to_dict()
    assert d["error"] == info.value.code.name == d["problems"][0]["code"]
    assert all({"code", "title", "message"} <= set(p) for p in d["problems"])


def test_backend():
    assert assess.backend in ("reference", "kernel")


def test_purepython_switch_forces_reference():
    out = subprocess.run([sys.executable, "-c", "import assess; print(assess.backend)"],
                         env={"ASSESS_PUREPYTHON": "1", "PATH": ""}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "reference"
