"""The `assess store` commands, through click's runner; identity numbers come from stdin or a file."""
import json

import yaml
from click.testing import CliRunner

from assess.cli import main
from store_helpers import make_id, screening_frame, write_parquet


def _config(url, tmp_path, policy_file, department):
    cfg = tmp_path / f"{department}.yaml"
    cfg.write_text(yaml.safe_dump({"url": url, "department": department, "keys_dir": str(tmp_path / "keys"),
                                   "keep_id_number": "encrypted", "policy": str(policy_file)}))
    return cfg


def test_store_cli(url, tmp_path, policy_file):
    run = CliRunner().invoke
    base = ["store", "--config", str(_config(url, tmp_path, policy_file, "mca"))]
    r = run(main, base + ["init"])
    assert r.exit_code == 0 and "migration 2" in r.output
    nhsa = ["store", "--config", str(_config(url, tmp_path, policy_file, "nhsa"))]     # the insurance office's node
    assert run(main, nhsa + ["init"]).exit_code == 0
    df = screening_frame(60, seed=4)
    pq = write_parquet(df, tmp_path / "out.parquet")
    r = run(main, base + ["import", str(pq), "--assessed-on", "2025-03-01", "--organisation", "机构", "--reason",
                          "first", "--assessor", "甲", "--assessor", "乙", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["stored"] == int((df["status"] == "ok").sum())
    person = df.loc[df["status"] == "ok", "A.2.8"].iloc[0]
    r = run(main, nhsa + ["lookup", "--department", "nhsa", "--purpose", "ltc", "--on", "2025-04-01", "--json"],
            input=person + "\n")
    assert r.exit_code == 0 and json.loads(r.output)["recognised"] is True
    assert person not in r.output
    idf = tmp_path / "id.txt"
    idf.write_text(make_id(seq=777))
    r = run(main, nhsa + ["lookup", "--department", "nhsa", "--purpose", "ltc", "--id-file", str(idf)])
    assert r.exit_code == 1 and "no recognisable result: no_record" in r.output
    r = run(main, nhsa + ["lookup", "--department", "nhsa", "--purpose", "ltc", "--all"], input=person)
    assert r.exit_code == 0 and "current" in r.output and "verified" in r.output
    r = run(main, base + ["verify"])
    assert r.exit_code == 0 and "0 failed" in r.output
    r = run(main, base + ["rescore", "--set", "gbt42195-2022.raise_stacking=additive"])
    assert r.exit_code == 0 and "re-scored" in r.output
    r = run(main, base + ["audit", "--json"])
    rows = json.loads(r.output)
    assert r.exit_code == 0 and [x["action"] for x in rows] == ["recognise", "lookup"]
    r = run(main, nhsa + ["lookup", "--department", "nhsa", "--purpose", "nope"], input=person)
    assert r.exit_code == 2 and "STORE_007" in r.output


def test_lookup_never_takes_the_number_from_argv():
    from assess.store.cli import lookup_cmd
    assert not [p for p in lookup_cmd.params if p.name in ("id_number", "person", "number")]
    assert all(p.param_type_name == "option" for p in lookup_cmd.params)


def _two_nodes_after_an_mca_import(url, tmp_path, policy_file, rows):
    """The CLI arguments of an mca and an nhsa node on one store, after mca imported ``rows`` people."""
    run = CliRunner().invoke
    mca = ["store", "--config", str(_config(url, tmp_path, policy_file, "mca"))]
    nhsa = ["store", "--config", str(_config(url, tmp_path, policy_file, "nhsa"))]
    assert run(main, mca + ["init"]).exit_code == 0 and run(main, nhsa + ["init"]).exit_code == 0
    df = screening_frame(rows, seed=4)
    pq = write_parquet(df, tmp_path / "out.parquet")
    r = run(main, mca + ["import", str(pq), "--assessed-on", "2025-03-01", "--organisation", "机构", "--reason",
                         "first", "--assessor", "甲", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["stored"] > 0, r.output
    return mca, nhsa, df


def test_a_node_asking_for_another_department_is_audited_with_the_node_named(url, tmp_path, policy_file):
    """--department is what the caller says, the node is who reads: the nhsa node asking as mca
    reads mca's records and is audited for it; the mca node asking as nhsa is audited as nhsa
    through mca, never as nhsa alone."""
    run = CliRunner().invoke
    mca, nhsa, df = _two_nodes_after_an_mca_import(url, tmp_path, policy_file, rows=20)
    idf = tmp_path / "id.txt"
    idf.write_text(df.loc[df["status"] == "ok", "A.2.8"].iloc[0])
    audited = []
    for node, asked, purpose, via in ((nhsa, "mca", "subsidy", "nhsa"), (mca, "nhsa", "ltc", "mca"),
                                      (mca, "mca", "subsidy", None)):
        r = run(main, node + ["lookup", "--department", asked, "--purpose", purpose, "--id-file", str(idf),
                              "--actor", "officer"])
        assert r.exit_code in (0, 1), r.output
        rows = json.loads(run(main, mca + ["audit", "--json"]).output)[len(audited):]
        if via is None:                 # a department reading its own records through its own node
            assert rows == []
        else:
            assert [(a["department"], a["actor"], a["record_department"]) for a in rows] == \
                [(asked, f"officer @ {via}", "mca")]
        audited += rows


def test_commands_on_a_store_file_that_does_not_exist(tmp_path, policy_file):
    """STORE_001, as import gives it, and no empty database file left behind."""
    cfg = _config(f"sqlite:///{tmp_path / 'missing.db'}", tmp_path, policy_file, "nhsa")
    idf = tmp_path / "id.txt"
    idf.write_text(make_id())
    base = ["store", "--config", str(cfg)]
    for args in (["lookup", "--department", "nhsa", "--purpose", "ltc", "--id-file", str(idf)],
                 ["lookup", "--department", "nhsa", "--purpose", "ltc", "--id-file", str(idf), "--all"],
                 ["verify"], ["verify", "x" * 32], ["audit"], ["audit", "--id-file", str(idf)],
                 ["rescore", "--record", "x" * 32]):
        r = CliRunner().invoke(main, base + args)
        assert r.exit_code == 2 and "STORE_001" in r.output, (args, r.output)
        assert not (tmp_path / "missing.db").exists(), args


def test_bad_dates_and_missing_id_file_are_usage_errors(url, tmp_path, policy_file):
    base = ["store", "--config", str(_config(url, tmp_path, policy_file, "nhsa"))]
    assert CliRunner().invoke(main, base + ["init"]).exit_code == 0
    idf = tmp_path / "id.txt"
    idf.write_text(make_id())
    pq = write_parquet(screening_frame(5), tmp_path / "o.parquet")
    for args in (["lookup", "--department", "nhsa", "--purpose", "ltc", "--id-file", str(idf), "--on", "1/10/2025"],
                 ["lookup", "--department", "nhsa", "--purpose", "ltc", "--id-file", str(idf), "--on", "2025-13-01"],
                 ["import", str(pq), "--assessed-on", "01/06/2025", "--organisation", "o", "--reason", "first"]):
        r = CliRunner().invoke(main, base + args)
        assert r.exit_code == 2 and "give a date as YYYY-MM-DD" in r.output, r.output
        assert r.exception is None or isinstance(r.exception, SystemExit)
    for args in (["lookup", "--department", "nhsa", "--purpose", "ltc", "--id-file", "nope.txt"],
                 ["audit", "--id-file", "nope.txt"]):
        r = CliRunner().invoke(main, base + args)
        assert r.exit_code == 2 and "does not exist" in r.output, r.output


def test_an_import_dated_after_today_is_refused_and_stores_nothing(url, tmp_path, policy_file):
    import datetime as dt

    from assess.store import records
    base = ["store", "--config", str(_config(url, tmp_path, policy_file, "mca"))]
    assert CliRunner().invoke(main, base + ["init"]).exit_code == 0
    pq = write_parquet(screening_frame(5), tmp_path / "o.parquet")
    tomorrow, today = records.china_today() + dt.timedelta(days=1), records.china_today()
    args = ["import", str(pq), "--organisation", "o", "--reason", "first", "--json", "--assessed-on"]
    r = CliRunner().invoke(main, base + args + [tomorrow.isoformat()])
    assert r.exit_code == 2 and "STORE_014" in r.output and tomorrow.isoformat() in r.output, r.output
    r = CliRunner().invoke(main, base + args + [today.isoformat()])        # today itself is allowed
    assert r.exit_code == 0 and json.loads(r.output)["stored"] > 0, r.output


def test_verify_and_rescore_of_unknown_records(url, tmp_path, policy_file):
    run = CliRunner().invoke
    mca, nhsa, df = _two_nodes_after_an_mca_import(url, tmp_path, policy_file, rows=10)
    r = run(main, mca + ["verify", "doesnotexist"])
    assert r.exit_code == 2 and "STORE_009" in r.output and "doesnotexist" in r.output
    r = run(main, mca + ["rescore", "--record", "doesnotexist"])
    assert r.exit_code == 2 and "STORE_009" in r.output
    from sqlalchemy import text

    from assess.store import db
    engine = db.make_engine(url)
    with engine.connect() as c:
        rid = c.execute(text("SELECT record_id FROM records")).scalars().first()
    engine.dispose()
    r = run(main, nhsa + ["rescore", "--record", rid])          # not nhsa's to rescore
    assert r.exit_code == 2 and "STORE_010" in r.output
    r = run(main, mca + ["verify", rid])
    assert r.exit_code == 0 and "1 records and 0 revocations checked, 0 failed" in r.output
