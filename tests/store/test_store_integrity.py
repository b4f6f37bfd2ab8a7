"""Append-only tables and signatures: each changed field is named by verify."""
import json

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from assess.store import schema, signing
from store_helpers import add


@pytest.mark.parametrize("table", schema.APPEND_ONLY)
@pytest.mark.parametrize("op", ["UPDATE", "DELETE"])
def test_append_only(store, table, op):
    rid = add(store)
    store.revoke(rid, "test")
    store.lookup  # noqa: B018
    with store.engine.begin() as c:
        c.execute(text("INSERT INTO audit (at, actor, department, action, purpose, person_key, record_id, "
                       "record_department, outcome) VALUES ('t','a','d','lookup','p','k','r','d','o')"))
        c.execute(text("INSERT INTO rescores (old_record_id, new_record_id, before, after, changed, actor, "
                       "created_at) VALUES ('a','b','{}','{}',0,'a','t')"))
        c.execute(text("INSERT INTO import_batches VALUES ('f', 1, 0, 1, 1, 0, '{}', 't')"))
    col = {"contexts": "status", "record_rows": "region", "signatures": "department", "revocations": "reason", "rescores": "actor",
           "audit": "actor", "import_batches": "skipped"}[table]
    sql = f"UPDATE {table} SET {col} = 'x'" if op == "UPDATE" else f"DELETE FROM {table}"
    with pytest.raises(DBAPIError, match="append-only"):
        with store.engine.begin() as c:
            c.execute(text(sql))
    with store.engine.connect() as c:
        assert c.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one() >= 1


_VIEW_COLS = ", ".join(schema.VIEW_ORDER[2:])


# Refused as writes to a view, not by the append-only triggers or a NOT NULL (which refuse the same
# statements on a table: a wide records table would pass a bare "raises"); the INSERT is a whole
# valid row under a new record id, which a table, or an updatable view, would take.
@pytest.mark.parametrize("sql", ["UPDATE records SET status = 'x'", "DELETE FROM records",
                                 f"INSERT INTO records (record_id, {_VIEW_COLS}) "
                                 f"SELECT 'f' || substr(record_id, 2), {_VIEW_COLS} FROM records"])
def test_records_view_takes_no_writes(store, sql):
    add(store)
    with pytest.raises(DBAPIError, match="view"):
        with store.engine.begin() as c:
            c.execute(text(sql))
    with store.engine.connect() as c:
        assert c.execute(text("SELECT COUNT(*) FROM records")).scalar_one() == 1


def test_truncate_refused_on_postgresql(store):
    if store.engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE exists only on PostgreSQL")
    add(store)
    with pytest.raises(DBAPIError, match="append-only"):
        with store.engine.begin() as c:
            c.execute(text("TRUNCATE record_rows"))


def _tamper(store, sql, **params):
    with store.engine.begin() as c:
        for t in ("contexts", "record_rows", "signatures"):
            c.execute(text(f"DROP TRIGGER IF EXISTS {t}_no_update" if c.dialect.name == "sqlite" else
                           f"ALTER TABLE {t} DISABLE TRIGGER USER"))
        c.execute(text(sql), params)


def _table(name):
    """The table that stores a field of the records view."""
    return "contexts" if name in schema.CONTEXT_COLUMNS else "record_rows"


def _other_value(name, value):
    if name in signing.JSON_FIELDS:
        return json.dumps({"tampered": True}) if value is None else value.replace("}", ',"x":1}', 1) \
            if value.endswith("}") else value.replace("]", ',"x"]', 1)
    if isinstance(value, int):
        return value + 1
    return "tampered" if value is None else value[:-1] + ("0" if value[-1] != "0" else "1")


@pytest.mark.parametrize("name", signing.FIELDS)
def test_tampering_each_field_is_named(store, name):
    rid = add(store)
    add(store, answers=None, assessed_on="2025-02-01")
    assert all(v.ok for v in store.verify())
    with store.engine.connect() as c:
        value = c.execute(text(f"SELECT {name} FROM records WHERE record_id = :r"), {"r": rid}).scalar_one()
    where = "context_id = (SELECT context_id FROM record_rows WHERE record_id = :r)" \
        if _table(name) == "contexts" else "record_id = :r"
    _tamper(store, f"UPDATE {_table(name)} SET {name} = :v WHERE {where}", v=_other_value(name, value), r=rid)
    verdicts = list(store.verify())
    assert len(verdicts) == 2
    bad = [v for v in verdicts if not v.ok]
    assert len(bad) == 1
    assert bad[0].fields == [name], bad[0]
    assert name in bad[0].reason


def test_tampered_digest_list_or_manifest(store):
    rid = add(store)
    _tamper(store, "UPDATE record_rows SET field_digests = :v WHERE record_id = :r",
            v=b"\x00" * signing.CHECK_SIZE * len(signing.FIELDS), r=rid)
    [v] = list(store.verify())
    assert not v.ok and v.fields == ["field_digests"] and "check list" in v.reason
    rid2 = add(store, assessed_on="2025-01-01")
    _tamper(store, "UPDATE signatures SET manifest = replace(manifest, 'mca', 'nhsa')")
    store.manifests = type(store.manifests)()
    v2 = next(v for v in store.verify([rid2]))
    assert not v2.ok and "signature" in v2.reason


def test_forged_signature_with_another_departments_key(make_store):
    mca, nhsa = make_store("mca"), make_store("nhsa")
    rid = add(mca)
    priv, kid = nhsa.signer
    with mca.engine.connect() as c:
        sig = c.execute(text("SELECT s.* FROM signatures s JOIN records r ON r.sig_id = s.sig_id "
                             "WHERE r.record_id = :r"), {"r": rid}).mappings().one()
    forged = signing.sign(priv, sig["manifest"])
    _tamper(mca, "UPDATE signatures SET signature = :s", s=forged)
    [v] = list(mca.verify([rid]))
    assert not v.ok and "not valid" in v.reason


def test_verify_offline_with_public_keys_only(store, tmp_path):
    """The check needs only the row, its manifest and the issuer's public key (no secrets, no store)."""
    from assess.store import keys
    rid = add(store)
    with store.engine.connect() as c:
        rec = dict(c.execute(text("SELECT * FROM records WHERE record_id = :r"), {"r": rid}).mappings().one())
        sig = dict(c.execute(text("SELECT * FROM signatures WHERE sig_id = :s"), {"s": rec["sig_id"]})
                   .mappings().one())
    pub = keys.load_public_keys(tmp_path / "keys" / "public")
    assert signing.verify_record(rec, sig, pub).ok
    rec["assessed_on"] = "2025-03-02"
    v = signing.verify_record(rec, sig, pub)
    assert not v.ok and v.fields == ["assessed_on"]


def test_a_repeated_add_leaves_no_context_without_a_record(store, monkeypatch):
    """The same assessment added again (a web retry) stores nothing: no record, and no context or
    signature row either (each add makes a new context, by its created_at, and a new signature
    group, by its random sig_id), as an import re-run."""
    from assess.store import records
    rid = add(store)
    monkeypatch.setattr(records, "now", lambda: "2099-01-01T00:00:00+00:00")
    assert add(store) == rid
    with store.engine.connect() as c:
        assert [c.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                for t in ("records", "contexts", "signatures")] == [1, 1, 1]
