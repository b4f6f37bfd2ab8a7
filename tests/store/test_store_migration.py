"""Layout 2 → 3: a store made before the records split migrates with every record, value and signature."""
import datetime as dt

from sqlalchemy import text

from assess.store import Store, db, records, schema
from store_helpers import add, make_id


def _layout_2_store(url, tmp_path, policy_file, monkeypatch) -> Store:
    """A store at schema version 2 whose records went into the wide table, as the engine before layout 3 did."""
    with monkeypatch.context() as m:
        m.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:2])
        m.setattr(schema, "LATEST", 2)

        def insert_v2(conn, rows, sig_row):
            db.insert(conn, schema.signatures, [sig_row])
            return db.insert(conn, schema.records_v1, rows, conflict="record_id")
        m.setattr(records, "insert_records", insert_v2)
        st = Store(url, department="mca", keys_dir=tmp_path / "keys", keep_id_number="encrypted",
                   policy=str(policy_file))
        st.init()
        for seq in range(4):
            add(st, id_number=make_id(seq=seq), assessed_on=dt.date(2025, 3, 1) - dt.timedelta(days=seq))
        add(st, id_number=make_id(seq=0), assessed_on="2025-01-01", reason="review")
        with st.engine.connect() as c:
            assert c.execute(text("SELECT MAX(version) FROM assess_schema")).scalar_one() == 2
            old = [dict(r) for r in c.execute(text("SELECT * FROM records ORDER BY seq")).mappings()]
    return st, old


def test_layout_2_store_migrates_and_verifies(url, tmp_path, policy_file, monkeypatch):
    st, old = _layout_2_store(url, tmp_path, policy_file, monkeypatch)
    try:
        assert st.init() == ["migration 3 records split into contexts and record rows (layout 3)"]
        with st.engine.connect() as c:
            new = [dict(r) for r in c.execute(text("SELECT * FROM records ORDER BY seq")).mappings()]
            n_ctx = c.execute(text("SELECT COUNT(*) FROM contexts")).scalar_one()
        for r in old + new:
            r["field_digests"] = bytes(r["field_digests"])
        assert new == old and n_ctx == len({r["assessed_on"] for r in old})
        assert all(v.ok for v in st.verify()) and len(list(st.verify())) == 5
        assert st.recognise(make_id(seq=0), "mca", "subsidy", on="2025-03-10")
        rid = add(st, id_number=make_id(seq=9))          # new records continue after the moved ones
        with st.engine.connect() as c:
            seqs = [r[0] for r in c.execute(text("SELECT seq FROM records ORDER BY seq"))]
        assert seqs == sorted(set(seqs)) and len(seqs) == 6
        assert next(iter(st.verify([rid]))).ok
    finally:
        st.close()
