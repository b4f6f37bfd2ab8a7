"""Recognition: every reason branch, crosswalks, and the audit row of each cross-department read."""
import datetime as dt
import re

import pytest
from sqlalchemy import text

import assess
from assess.store import Reason, StoreError, records
from store_helpers import ASSESSED, add, example_answers, make_id

ON = ASSESSED + dt.timedelta(days=30)


def test_recognised_through_public_api(store):
    rid = add(store)
    r = assess.recognise(make_id(), "nhsa", "ltc", on=ON, store=store)
    assert r and r.reason is Reason.RECOGNISED
    assert r.level == assess.score_one("gbt42195-2022", example_answers()).level
    assert r.record["record_id"] == rid and r.record["assessors"] == 2
    assert "assessed 2025-03-01" in r.detail
    assert r.detail_zh.startswith("mca（测试评估机构）于 2025-03-01 评估，至 2025-03-31 已 30 天，依据政策 ")


def test_the_day_may_be_given_as_a_date_a_datetime_or_text(store, nhsa):
    add(store)
    by_date = nhsa.recognise(make_id(), "nhsa", "ltc", on=ON)
    late_that_day = dt.datetime.combine(ON, dt.time(23, 59))
    for on in (late_that_day, ON.isoformat()):
        r = nhsa.recognise(make_id(), "nhsa", "ltc", on=on)
        assert (r.reason, r.level, r.on) == (by_date.reason, by_date.level, ON.isoformat())
    with pytest.raises(TypeError, match="on must be a date, a datetime or 'YYYY-MM-DD', not 20250331"):
        nhsa.recognise(make_id(), "nhsa", "ltc", on=20250331)
    with pytest.raises(ValueError, match="on='31/03/2025' is not a date: give YYYY-MM-DD"):
        nhsa.recognise(make_id(), "nhsa", "ltc", on="31/03/2025")


def test_lowercase_x_is_the_same_person(store, nhsa):
    pid = make_id(seq=2)
    assert pid.endswith("X") or True
    add(store, id_number=pid)
    assert nhsa.recognise(pid.lower(), "nhsa", "ltc", on=ON)


def test_no_record(store, nhsa):
    r = nhsa.recognise(make_id(seq=99), "nhsa", "ltc", on=ON)
    assert not r and r.reason is Reason.NO_RECORD and r.record is None
    assert "no recognisable result" in str(r)


def test_no_record_before_the_date(store, nhsa):
    add(store)
    r = nhsa.recognise(make_id(), "nhsa", "ltc", on=ASSESSED - dt.timedelta(days=1))
    assert r.reason is Reason.NO_RECORD and "1 later" in r.detail
    assert r.detail_zh == f"没有 {ASSESSED - dt.timedelta(days=1)} 当日或之前评估的有效记录（之后另有 1 条）"


def test_a_record_dated_after_today_is_refused(store, nhsa):
    """Dated ahead, a record would stay within a policy's maximum age for longer than it should."""
    tomorrow = records.china_today() + dt.timedelta(days=1)
    for day in (tomorrow, tomorrow.isoformat(), dt.datetime.combine(tomorrow, dt.time(0, 0))):
        with pytest.raises(StoreError) as e:
            add(store, assessed_on=day)
        assert e.value.code.name == "STORE_014" and tomorrow.isoformat() in str(e.value)
    assert not nhsa.recognise(make_id(), "nhsa", "ltc", on=tomorrow)
    add(store, assessed_on=records.china_today())
    assert nhsa.recognise(make_id(), "nhsa", "ltc", on=records.china_today())


def test_today_is_the_day_in_china_whatever_the_hosts_time_zone():
    """Assessments are dated by the day in China (UTC+8): at 01:00 on 8 December in Beijing a UTC
    host's date is still the 7th, and an assessment of the 8th must pass."""
    from assess.store import records
    utc = dt.timezone.utc
    beijing_1am = dt.datetime(2026, 12, 7, 17, 0, tzinfo=utc)
    assert records.china_today(beijing_1am) == dt.date(2026, 12, 8)
    assert records.china_today(dt.datetime(2026, 12, 7, 15, 59, tzinfo=utc)) == dt.date(2026, 12, 7)
    assert records.assessment_day("2026-12-08", "add", now=beijing_1am) == dt.date(2026, 12, 8)
    with pytest.raises(StoreError) as e:
        records.assessment_day("2026-12-09", "add", now=beijing_1am)
    assert "after today in China (2026-12-08)" in str(e.value)
    with pytest.raises(ValueError, match="assessed_on='08/12/2026' is not a date: give YYYY-MM-DD"):
        records.assessment_day("08/12/2026", "add", now=beijing_1am)
    assert records.china_time_text("2026-12-07T17:05:09+00:00") == "2026-12-08 01:05（北京时间）"


def test_expired(store, nhsa):
    add(store)
    r = nhsa.recognise(make_id(), "nhsa", "ltc", on=ASSESSED + dt.timedelta(days=366))
    assert r.reason is Reason.EXPIRED and "366 days" in r.detail
    assert r.detail_zh == f"评估于 {ASSESSED}，至 {ASSESSED + dt.timedelta(days=366)} 已 366 天，政策最长采信 365 天"
    assert r.to_dict()["detail_zh"] == r.detail_zh
    assert nhsa.recognise(make_id(), "nhsa", "ltc", on=ASSESSED + dt.timedelta(days=365))


def test_instrument_version_not_accepted(store, nhsa):
    add(store)
    r = nhsa.recognise(make_id(), "nhsa", "old_version", on=ON)
    assert r.reason is Reason.INSTRUMENT_NOT_ACCEPTED
    assert r.detail_zh.startswith("不采信 gbt42195-2022 ") and "版的结果（采信版本：" in r.detail_zh


def test_issuer_not_accepted(store, nhsa):
    add(store)
    r = nhsa.recognise(make_id(), "nhsa", "only_nhc", on=ON)
    assert r.reason is Reason.ISSUER_NOT_ACCEPTED and r.detail_zh == "不采信 mca 出具的结果（采信：nhc）"


def test_level_not_accepted(store, nhsa):
    add(store)
    r = nhsa.recognise(make_id(), "nhsa", "severe", on=ON)
    assert r.reason is Reason.LEVEL_NOT_ACCEPTED and r.level is None
    assert r.detail_zh.startswith(f"等级 {r.record['level']} 不在采信范围内（采信等级：")


def test_too_few_assessors(store, nhsa):
    add(store, assessors=["张三"])
    r = nhsa.recognise(make_id(), "nhsa", "ltc", on=ON)
    assert r.reason is Reason.TOO_FEW_ASSESSORS and r.detail_zh == "评估员 1 名，政策要求至少 2 名"


def test_revoked_and_the_record_before_it(store, nhsa):
    first = add(store, assessed_on=ASSESSED - dt.timedelta(days=10))
    second = add(store, answers={**example_answers(), "B.1.1": 0})
    store.revoke(second, "录入错误")
    r = nhsa.recognise(make_id(), "nhsa", "ltc", on=ON)
    assert r and r.record["record_id"] == first      # a revoked record never counted
    store.revoke(first, "录入错误")
    r = nhsa.recognise(make_id(), "nhsa", "ltc", on=ON)
    assert r.reason is Reason.REVOKED and "录入错误" in r.detail
    assert r.detail_zh.startswith(f"{ASSESSED} 的评估记录已由 mca 于 ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d 的评估记录已由 mca 于 \d{4}-\d\d-\d\d \d\d:\d\d（北京时间） 撤销：录入错误",
                        r.detail_zh), r.detail_zh
    with pytest.raises(StoreError) as e:
        store.revoke(first, "again")
    assert e.value.code.name == "STORE_011"


def test_only_the_issuer_revokes(make_store):
    mca, nhsa = make_store("mca"), make_store("nhsa")
    rid = add(mca)
    with pytest.raises(StoreError) as e:
        nhsa.revoke(rid, "not mine")
    assert e.value.code.name == "STORE_010"


def test_signature_invalid(store, nhsa):
    add(store)
    with store.engine.begin() as c:
        if c.dialect.name == "sqlite":
            c.execute(text("DROP TRIGGER record_rows_no_update"))
        else:
            c.execute(text("ALTER TABLE record_rows DISABLE TRIGGER USER"))
        c.execute(text("UPDATE record_rows SET level = 0"))
    nhsa.manifests = type(nhsa.manifests)()
    r = nhsa.recognise(make_id(), "nhsa", "ltc", on=ON)
    assert r.reason is Reason.SIGNATURE_INVALID and "level" in r.detail
    assert r.detail_zh == "签名校验失败：签名后被改动的字段：level"


def test_unknown_signing_key_is_signature_invalid(make_store, tmp_path):
    nhc = make_store("nhc")
    add(nhc)
    (tmp_path / "keys" / "public" / "nhc.pub.pem").unlink()
    mca = make_store("mca")
    r = mca.recognise(make_id(), "mca", "subsidy", on=ON)
    assert r.reason is Reason.SIGNATURE_INVALID and "no public key" in r.detail
    assert r.detail_zh.startswith("签名校验失败：可信公钥中没有 nhc 部门的公钥 ")


def test_crosswalk(store, nhsa):
    add(store)
    lvl = assess.score_one("gbt42195-2022", example_answers()).level
    r = nhsa.recognise(make_id(), "nhsa", "walk", on=ON)
    assert r and r.crosswalk == "to_demo" and r.scale == "demo-scale"
    assert r.level == {0: 0, 1: 1, 2: 1, 3: 2, 4: 2}[lvl]
    assert r.detail_zh.endswith(f"；按对照表 to_demo（{r.detail.split('(')[-1].rstrip(')')}）等级 {lvl} 对应为 {r.level}")


def test_unknown_purpose(store, nhsa):
    with pytest.raises(StoreError) as e:
        nhsa.recognise(make_id(), "nhsa", "nope", on=ON)
    assert e.value.code.name == "STORE_007" and "nhsa/ltc" in str(e.value)


def test_audit_row_per_cross_department_read(make_store):
    mca, nhsa = make_store("mca"), make_store("nhsa")
    rid = add(mca)
    assert mca.audit_rows() == []
    mca.recognise(make_id(), "mca", "subsidy", on=ON)          # own record: no audit row
    assert mca.audit_rows() == []
    nhsa.recognise(make_id(), "nhsa", "ltc", on=ON, actor="clerk-7")
    rows = nhsa.audit_rows()
    assert len(rows) == 1
    a = rows[0]
    assert (a["department"], a["actor"], a["action"], a["purpose"], a["record_id"], a["record_department"],
            a["outcome"]) == ("nhsa", "clerk-7", "recognise", "ltc", rid, "mca", "recognised")
    assert a["person_key"] == nhsa.person_key(make_id()) and a["at"]
    nhsa.lookup(make_id(), "nhsa", "ltc")
    nhsa.recognise(make_id(), "nhsa", "ltc", on=ASSESSED + dt.timedelta(days=999))
    rows = nhsa.audit_rows(make_id())
    assert [(r["action"], r["outcome"]) for r in rows] == [("recognise", "recognised"), ("lookup", "read"),
                                                            ("recognise", "expired")]
    nhsa.recognise(make_id(seq=99), "nhsa", "ltc", on=ON)       # nothing read, nothing to audit
    assert len(nhsa.audit_rows()) == 3


def test_lookup_states(store):
    a = add(store, assessed_on=ASSESSED - dt.timedelta(days=5))
    b = add(store)
    store.revoke(a, "dup")
    rows = {r["record_id"]: r for r in store.lookup(make_id(), "mca", "subsidy")}
    assert rows[a]["state"] == "revoked" and rows[b]["state"] == "current"
    assert all(r["verified"] for r in rows.values())


def test_audit_rows_are_written_under_the_stores_writer_lock(make_store):
    """An audit insert is a store write: on SQLite it queues on the deployment's writer lock
    (Store.write_lock, which web/stores.py sets) like Store.add, not in SQLite's busy back-off."""
    mca, nhsa = make_store("mca"), make_store("nhsa")
    add(mca)
    held = []

    class Lock:
        def __enter__(self):
            held.append("enter")

        def __exit__(self, *exc):
            held.append("exit")
    nhsa.write_lock = Lock()
    nhsa.recognise(make_id(), "nhsa", "ltc", on=ON)
    assert len(nhsa.audit_rows()) == 1
    if nhsa.engine.dialect.name == "sqlite":        # PostgreSQL: on the look-up's own autocommit connection
        assert held == ["enter", "exit"]


def test_a_node_asking_for_another_department_is_audited_with_the_node_named(make_store):
    """The asking department is what the caller says; the store's own department is who reads.
    Reads of records that either did not issue are audited, the node named in the actor."""
    mca, nhsa = make_store("mca"), make_store("nhsa")
    add(mca)
    assert nhsa.recognise(make_id(), "mca", "subsidy", on=ON, actor="officer")
    nhsa.lookup(make_id(), "mca", "subsidy", actor="officer")
    assert [(a["department"], a["actor"], a["action"]) for a in mca.audit_rows()] == \
        [("mca", "officer @ nhsa", "recognise"), ("mca", "officer @ nhsa", "lookup")]
    assert mca.recognise(make_id(), "mca", "subsidy", on=ON, actor="officer")
    assert len(mca.audit_rows()) == 2            # mca reading its own records through its own node
    assert assess.recognise(make_id(), "nhsa", "ltc", on=ON, store=mca, actor="officer")
    assert [(a["department"], a["actor"]) for a in mca.audit_rows()][2:] == [("nhsa", "officer @ mca")]


def test_the_default_store_audits_its_reads_for_another_department(make_store, tmp_path, monkeypatch):
    import yaml

    import assess.store
    mca = make_store("mca")
    add(mca)
    cfg = tmp_path / "nhsa.yaml"
    cfg.write_text(yaml.safe_dump({"url": mca.url, "department": "nhsa", "keys_dir": str(mca.keys_dir),
                                   "keep_id_number": "encrypted", "policy": str(mca._policy_path)}))
    monkeypatch.setenv(assess.store.CONFIG_ENV, str(cfg))
    monkeypatch.setattr(assess.store, "_default", None)
    try:
        assert assess.recognise(make_id(), "mca", "subsidy", on=ON, actor="officer")
        assert [(a["department"], a["actor"]) for a in mca.audit_rows()] == [("mca", "officer @ nhsa")]
    finally:
        if assess.store._default is not None:
            assess.store._default.close()
