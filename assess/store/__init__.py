"""assess.store: an append-only, signed store of assessment results, and cross-department recognition.

Modules: ``schema`` (tables, migrations), ``db`` (engines, the single writer), ``keys`` (person
keys, identity-number encryption, key files), ``signing`` (canonical JSON, field digests,
Ed25519), ``records`` (building signed rows), ``core`` (:class:`Store`), ``recognise``,
``policy``, ``importer``, ``cli``. Heavy imports (SQLAlchemy, cryptography) happen on first use,
so ``import assess`` stays light.
"""
from __future__ import annotations

import datetime as _dt

_LAZY = {"Store": "core", "CONFIG_ENV": "core", "Recognition": "recognise", "Reason": "recognise",
         "Policy": "policy", "load_policy": "policy", "Verdict": "signing", "StoreError": "errors",
         "StoreCode": "errors", "ImportReport": "importer"}
_default = None


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)


def default_store():
    """The store named by ``ASSESS_STORE_CONFIG`` (opened once per process)."""
    global _default
    if _default is None:
        from .core import Store
        _default = Store.from_config()
    return _default


def recognise(person_id: str, department: str, purpose: str, on: _dt.date | str | None = None, *,
              store=None, actor: str | None = None):
    """The grade ``department`` may rely on for ``purpose`` on date ``on`` (default today).

    ``person_id`` is the 公民身份号码 (it is only hashed, never logged). Returns a
    :class:`~assess.store.recognise.Recognition`: truthy with ``level``, ``record`` and ``detail``
    when a result is recognised; falsy with ``reason`` (no_record, revoked, expired,
    instrument_not_accepted, issuer_not_accepted, level_not_accepted, too_few_assessors,
    signature_invalid) and ``detail`` otherwise. Reads of other departments' records are audited.

    Without ``store``, the store of ``ASSESS_STORE_CONFIG`` is asked. A read through a node of
    another department than ``department`` is audited with the node named (see recognise._audit_rows).
    """
    if store is None:
        return default_store().recognise(person_id, department, purpose, on=on, actor=actor)
    from .recognise import recognise as recognise_for
    return recognise_for(store, person_id, department, purpose, on=on, actor=actor)


__all__ = ["Store", "Recognition", "Reason", "Policy", "load_policy", "Verdict", "StoreError", "StoreCode",
           "ImportReport", "recognise", "default_store", "CONFIG_ENV"]
