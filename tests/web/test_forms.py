"""web/forms.py: the instrument list the person page and GET /api/instruments show."""
from __future__ import annotations


def test_instrument_list_is_read_again_only_when_a_file_changes(monkeypatch):
    import assess
    from web import forms
    real, calls = assess.list_instruments, []
    monkeypatch.setattr(assess, "list_instruments", lambda: calls.append(1) or real())
    monkeypatch.setattr(forms, "_listed", ((), []))
    first = forms.instruments()
    assert forms.instruments() == first == real() and len(calls) == 1
    monkeypatch.setattr(forms, "_stamps", lambda refs: ("a file changed",))
    forms.instruments()
    assert len(calls) == 2
