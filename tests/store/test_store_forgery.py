"""Rows written to the database outside assess: only what the issuer signed revokes or supersedes.

Anyone who can write to the store's database can add rows (the tables are append-only, not
write-protected), but cannot sign them: recognition and look-up ignore an unsigned revocation, one
signed by another department than the record's issuer, and a supersedes link from a record that
does not verify or was issued by another department; ``verify`` reports the bad revocations.
"""
import datetime as dt
import json

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import text

import assess
from assess.cli import main
from assess.store import StoreError, records, schema, signing
from store_helpers import ASSESSED, add, example_answers, make_id

ON = ASSESSED + dt.timedelta(days=30)
OLDER = ASSESSED - dt.timedelta(days=20)


def _insert_revocation(store, record_id, department="cdpf", key_id="nokey", signature="nosig"):
    with store.engine.begin() as c:
        c.execute(text("INSERT INTO revocations VALUES ('x', :r, :d, 'whatever', 'nobody', '2025-09-20', :k, :s)"),
                  {"r": record_id, "d": department, "k": key_id, "s": signature})


def _signed_revocation(store, record_id) -> dict:
    """A revocation signed with ``store``'s own key, as Store.revoke makes it."""
    priv, kid = store.signer
    row = {"record_id": record_id, "department": store.department, "reason": "not mine", "actor": "x",
           "created_at": "2025-03-05T00:00:00+00:00", "key_id": kid}
    payload = signing.revocation_payload(row)
    return {**row, "revocation_id": signing.record_digest(payload.encode()), "signature": signing.sign(priv, payload)}


@pytest.fixture
def two(make_store):
    """An older record issued by mca and a newer one issued by nhsa, of the same person."""
    mca, nhsa = make_store("mca"), make_store("nhsa")
    old = add(mca, assessed_on=OLDER)
    new = add(nhsa, answers={**example_answers(), "B.1.1": 0})
    return mca, nhsa, old, new


def test_an_unsigned_revocation_is_ignored_and_reported(two):
    mca, nhsa, old, new = two
    _insert_revocation(nhsa, new)
    r = nhsa.recognise(make_id(), "nhsa", "ltc", on=ON)
    assert r and r.record["record_id"] == new
    states = {x["record_id"]: x["state"] for x in nhsa.lookup(make_id(), "nhsa", "ltc")}
    assert states == {new: "current", old: "current"}
    bad = [v for v in nhsa.verify() if not v.ok]
    assert [(v.kind, v.record_id) for v in bad] == [("revocation", new)]
    assert "no public key nokey" in bad[0].reason


def test_a_revocation_signed_by_another_department_is_ignored(two):
    mca, nhsa, old, new = two
    with mca.engine.begin() as c:           # mca's valid signature, on nhsa's record
        c.execute(schema.revocations.insert().values(**_signed_revocation(mca, new)))
    assert nhsa.recognise(make_id(), "nhsa", "ltc", on=ON).record["record_id"] == new
    [bad] = [v for v in nhsa.verify() if not v.ok]
    assert bad.kind == "revocation" and "issued by nhsa" in bad.reason


def test_a_tampered_revocation_is_ignored(two):
    mca, nhsa, old, new = two
    rev = {**_signed_revocation(nhsa, new), "reason": "changed after signing"}
    with nhsa.engine.begin() as c:
        c.execute(schema.revocations.insert().values(**rev))
    assert nhsa.recognise(make_id(), "nhsa", "ltc", on=ON).record["record_id"] == new
    [bad] = [v for v in nhsa.verify([new]) if not v.ok]
    assert "not valid" in bad.reason


def test_a_signed_revocation_still_counts_and_verifies(two):
    mca, nhsa, old, new = two
    nhsa.revoke(new, "录入错误")
    r = nhsa.recognise(make_id(), "nhsa", "ltc", on=ON)
    assert r.record["record_id"] == old
    assert all(v.ok for v in nhsa.verify()) and [v.kind for v in nhsa.verify()].count("revocation") == 1


def test_a_forged_revocation_blocks_the_issuer_with_a_coded_error(two):
    """One revocation per record (a unique column): the issuer is told why, not "already revoked"."""
    mca, nhsa, old, new = two
    _insert_revocation(nhsa, new)
    with pytest.raises(StoreError) as e:
        nhsa.revoke(new, "genuine")
    assert e.value.code.name == "STORE_012" and "verify" in str(e.value)


def test_a_forged_supersedes_link_is_ignored(two):
    """A row copied from the older record, renamed and pointing at the newer one: it does not verify."""
    mca, nhsa, old, new = two
    cols = ", ".join(c for c in schema.ROW_COLUMNS if c not in ("record_id", "supersedes"))
    with nhsa.engine.begin() as c:
        c.execute(text(f"INSERT INTO record_rows (record_id, supersedes, {cols}) "
                       f"SELECT substr(record_id, 1, 16) || 'f0f0f0f0f0f0f0f0', :new, {cols} "
                       f"FROM record_rows WHERE record_id = :old"), {"old": old, "new": new})
    r = nhsa.recognise(make_id(), "nhsa", "ltc", on=ON)
    assert r and r.record["record_id"] == new
    assert {x["record_id"]: x["state"] for x in nhsa.lookup(make_id(), "nhsa", "ltc")}[new] == "current"


def test_a_signed_link_from_another_department_is_ignored(two):
    """nhsa signs a record that names mca's as superseded (written past Store.add, which refuses it)."""
    mca, nhsa, old, new = two
    res = assess.score_one("gbt42195-2022", example_answers())
    row, sig = nhsa.prepare_add(res, example_answers(), id_number=make_id(), assessed_on=OLDER - dt.timedelta(days=5),
                                assessors=["甲", "乙"], organisation="o", reason="review", supersedes=old)
    nhsa._write(lambda conn: records.insert_records(conn, [row], sig))
    assert all(v.ok for v in mca.verify())
    r = mca.recognise(make_id(), "mca", "subsidy", on=OLDER + dt.timedelta(days=1))
    assert r and r.record["record_id"] == old


def test_add_supersedes_only_the_issuers_own_record_of_the_same_person(two):
    mca, nhsa, old, new = two
    res = assess.score_one("gbt42195-2022", example_answers())
    kw = dict(assessed_on=ASSESSED, assessors=["甲", "乙"], organisation="o", reason="review")
    with pytest.raises(StoreError) as e:
        nhsa.add(res, example_answers(), id_number=make_id(), supersedes=old, **kw)
    assert e.value.code.name == "STORE_010" and "supersede" in str(e.value)
    with pytest.raises(StoreError) as e:
        nhsa.add(res, example_answers(), id_number=make_id(seq=5), supersedes=new, **kw)
    assert e.value.code.name == "STORE_013"
    with pytest.raises(StoreError) as e:
        nhsa.add(res, example_answers(), id_number=make_id(), supersedes="0" * 32, **kw)
    assert e.value.code.name == "STORE_009"
    newest = nhsa.add(res, example_answers(), id_number=make_id(), supersedes=new, **kw)
    states = {x["record_id"]: x["state"] for x in nhsa.lookup(make_id(), "nhsa", "ltc")}
    assert states[new] == "superseded" and states[newest] == "current"


def test_rescore_applies_the_same_rules(make_store):
    """Store.current (rescore's records) ignores a forged revocation like recognition does."""
    mca = make_store("mca")
    rid = add(mca, answers={**example_answers(), "A.2.14.1": 2})
    _insert_revocation(mca, rid, department="mca")
    logs = mca.rescore("gbt42195-2022", settings={"raise_stacking": "additive"})
    assert [x["old_record_id"] for x in logs] == [rid]


def test_cli_verify_reports_an_invalid_revocation(two, tmp_path):
    mca, nhsa, old, new = two
    _insert_revocation(nhsa, new)
    cfg = tmp_path / "nhsa.yaml"
    cfg.write_text(yaml.safe_dump({"url": nhsa.url, "department": "nhsa", "keys_dir": str(nhsa.keys_dir),
                                   "keep_id_number": "encrypted"}))
    r = CliRunner().invoke(main, ["store", "--config", str(cfg), "verify"])
    assert r.exit_code == 1, r.output
    assert f"FAIL revocation of {new}:" in r.output and "2 records and 1 revocations checked, 1 failed" in r.output
    r = CliRunner().invoke(main, ["store", "--config", str(cfg), "verify", "--json"])
    assert json.loads(r.stdout.splitlines()[0])["kind"] == "revocation"
