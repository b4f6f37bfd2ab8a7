"""The compiled halves are refused when built from other sources than the Python code expects
(assess/_compiled.py): a stale build used to fail mid-run with an AttributeError."""
import types

import pytest

from assess import _compiled


@pytest.mark.parametrize("name, expected", [("_kernel", _compiled.KERNEL_ABI), ("_screen", _compiled.SCREEN_ABI)])
def test_the_built_extensions_state_the_interface_this_code_expects(name, expected):
    module = pytest.importorskip(f"assess.{name}", reason="compiled extensions not built")
    assert module.ABI == expected


@pytest.mark.parametrize("stale", [types.SimpleNamespace(ABI=0), types.SimpleNamespace()],
                         ids=["older interface", "built before the check"])
def test_a_stale_build_is_refused_with_what_to_do(monkeypatch, stale):
    monkeypatch.delenv(_compiled.PUREPYTHON_ENV, raising=False)
    monkeypatch.setattr(_compiled.importlib, "import_module", lambda name: stale)
    with pytest.raises(_compiled.StaleBuild, match=r"assess\._screen was built from other sources.*rebuild it with "
                                                   r"pip install -e \..*ASSESS_PUREPYTHON=1"):
        _compiled.load("_screen", _compiled.SCREEN_ABI)


def test_the_pure_python_setting_loads_nothing(monkeypatch):
    def refuse(name):
        raise AssertionError("imported although ASSESS_PUREPYTHON=1")
    monkeypatch.setattr(_compiled.importlib, "import_module", refuse)
    monkeypatch.setenv(_compiled.PUREPYTHON_ENV, "1")
    assert _compiled.load("_kernel", _compiled.KERNEL_ABI) is None


def test_an_extension_not_built_means_the_pure_python_path(monkeypatch):
    def missing(name):
        raise ModuleNotFoundError(name)
    monkeypatch.delenv(_compiled.PUREPYTHON_ENV, raising=False)
    monkeypatch.setattr(_compiled.importlib, "import_module", missing)
    assert _compiled.load("_kernel", _compiled.KERNEL_ABI) is None
