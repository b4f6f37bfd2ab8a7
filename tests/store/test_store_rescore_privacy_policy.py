"""Rescoring, privacy of identity numbers, key settings and policy validation."""
import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import text

import assess
from assess.store import Store, StoreError, load_policy
from store_helpers import ASSESSED, add, example_answers, make_id, screening_frame, write_parquet


def test_rescore_records_before_and_after(store):
    answers = {**example_answers(), "A.2.14.1": 2}          # R2 and R3 both fire
    rid = add(store, answers)
    before = assess.score_one("gbt42195-2022", answers)
    after = assess.score_one("gbt42195-2022", answers, settings={"raise_stacking": "additive"})
    assert before.level != after.level
    logs = store.rescore("gbt42195-2022", settings={"raise_stacking": "additive"})
    assert len(logs) == 1 and logs[0]["old_record_id"] == rid and logs[0]["changed"] == 1
    b, a = json.loads(logs[0]["before"]), json.loads(logs[0]["after"])
    assert (b["level"], a["level"]) == (before.level, after.level)
    rows = {r["record_id"]: r for r in store.lookup(make_id(), "mca", "subsidy")}
    assert rows[rid]["state"] == "superseded" and rows[logs[0]["new_record_id"]]["state"] == "current"
    r = store.recognise(make_id(), "mca", "subsidy", on="2025-03-02")
    assert r.record["record_id"] == logs[0]["new_record_id"] and r.level == after.level
    assert store.rescore("gbt42195-2022", settings={"raise_stacking": "additive"}) == []   # nothing left to do
    with store.engine.connect() as c:
        assert c.execute(text("SELECT COUNT(*) FROM rescores")).scalar_one() == 1
    assert all(v.ok for v in store.verify())


def test_rescore_of_imported_records(store, tmp_path):
    df = screening_frame(50, seed=9)
    store.import_parquet(write_parquet(df, tmp_path / "o.parquet"), assessed_on="2025-03-01", assessors=["a"],
                         organisation="o", reason="first")
    logs = store.rescore("gbt42195-2022", settings={"raise_stacking": "additive"})
    assert len(logs) == int((df["status"] == "ok").sum())
    changed = sum(r["changed"] for r in logs)
    assert changed == int(((df["status"] == "ok") & df["rule_R2"] & df["rule_R3"] & (df["level"] < 4)).sum())


def test_no_identity_number_in_logs_errors_or_database(make_store, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    store = make_store("mca")
    numbers = [make_id(seq=s) for s in (1, 2, 3)]
    for n in numbers:
        add(store, id_number=n)
    df = screening_frame(30, seed=2)
    store.import_parquet(write_parquet(df, tmp_path / "o.parquet"), assessed_on="2025-03-01", assessors=["a"],
                         organisation="o", reason="first")
    for n in numbers:
        store.recognise(n, "mca", "subsidy", on="2025-03-02")
        store.lookup(n, "mca", "subsidy")
    bad = numbers[0][:-1] + ("0" if numbers[0][-1] != "0" else "1")
    with pytest.raises(StoreError) as e:
        store.recognise(bad, "mca", "subsidy")
    assert bad not in str(e.value) and bad[:6] + "*" * 11 + bad[-1] in str(e.value)
    everything = numbers + list(df["A.2.8"]) + [bad]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records and not any(n in logged for n in everything)
    store.close()
    if not store.url.startswith("sqlite"):
        return
    db = Path(store.url[len("sqlite:///"):])
    blob = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    for n in everything:
        assert n.encode() not in blob and n[:17].encode() not in blob


def test_keep_id_number_none(make_store):
    store = make_store("mca", keep="none")
    rid = add(store)
    with store.engine.connect() as c:
        assert c.execute(text("SELECT id_number_enc FROM records WHERE record_id = :r"), {"r": rid}).scalar() is None
    assert store.recognise(make_id(), "mca", "subsidy", on="2025-03-02")


def test_settings_have_no_default(tmp_path):
    with pytest.raises(StoreError) as e:
        Store("sqlite:///x.db", department="mca", keys_dir=tmp_path, keep_id_number="")
    assert e.value.code.name == "STORE_003"
    cfg = tmp_path / "s.yaml"
    cfg.write_text("url: x.db\ndepartment: mca\nkeys_dir: k\n")
    with pytest.raises(StoreError, match="keep_id_number"):
        Store.from_config(cfg)


def test_uninitialised_store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'n.db'}", department="mca", keys_dir=tmp_path, keep_id_number="none")
    with pytest.raises(StoreError) as e:
        s.check_schema()
    assert e.value.code.name == "STORE_001"
    s.close()


def test_example_policy_loads_and_marks_deployment_choices():
    p = Path(__file__).resolve().parents[2] / "examples" / "recognition-policy.yaml"
    pol = load_policy(p)
    assert ("nhsa", "ltc_benefit") in pol.purposes
    assert "DEPLOYMENT CHOICE" in p.read_text(encoding="utf-8")


@pytest.mark.parametrize("edit, needle", [
    (lambda t: t.replace("max_age_days: 365, min_assessors: 2", "min_assessors: 2"), "max_age_days"),
    (lambda t: t.replace("issuers: [mca, nhsa],\n", "issuers: [mca, tax],\n"), "tax"),
    (lambda t: t.replace("levels: [4]", "levels: [7]"), "[7]"),
    (lambda t: t.replace("crosswalk: to_demo", "crosswalk: nowhere"), "nowhere"),
    (lambda t: t.replace("instrument: gbt42195-2022, versions", "instrument: nope, versions"), "nope"),
])
def test_invalid_policy(tmp_path, edit, needle):
    from store_helpers import POLICY
    text_ = edit(POLICY)
    assert text_ != POLICY
    p = tmp_path / "p.yaml"
    p.write_text(text_, encoding="utf-8")
    with pytest.raises(assess.AssessError) as e:
        load_policy(p)
    assert e.value.code.name == "STORE_006" and needle in str(e.value)
