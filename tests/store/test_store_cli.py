"""The `assess store` commands, through click's runner; identity numbers come from stdin or a file."""
import json

import yaml
from click.testing import CliRunner

from assess.cli import main
from store_helpers import make_id, screening_frame, write_parquet


def test_store_cli(url, tmp_path, policy_file):
    cfg = tmp_path / "store.yaml"
    cfg.write_text(yaml.safe_dump({"url": url, "department": "mca", "keys_dir": str(tmp_path / "keys"),
                                   "keep_id_number": "encrypted", "policy": str(policy_file)}))
    run = CliRunner().invoke
    base = ["store", "--config", str(cfg)]
    r = run(main, base + ["init"])
    assert r.exit_code == 0 and "migration 2" in r.output
    df = screening_frame(60, seed=4)
    pq = write_parquet(df, tmp_path / "out.parquet")
    r = run(main, base + ["import", str(pq), "--assessed-on", "2025-03-01", "--organisation", "机构", "--reason",
                          "first", "--assessor", "甲", "--assessor", "乙", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["stored"] == int((df["status"] == "ok").sum())
    person = df.loc[df["status"] == "ok", "A.2.8"].iloc[0]
    r = run(main, base + ["lookup", "--department", "nhsa", "--purpose", "ltc", "--on", "2025-04-01", "--json"],
            input=person + "\n")
    assert r.exit_code == 0 and json.loads(r.output)["recognised"] is True
    assert person not in r.output
    idf = tmp_path / "id.txt"
    idf.write_text(make_id(seq=777))
    r = run(main, base + ["lookup", "--department", "nhsa", "--purpose", "ltc", "--id-file", str(idf)])
    assert r.exit_code == 1 and "no recognisable result: no_record" in r.output
    r = run(main, base + ["lookup", "--department", "nhsa", "--purpose", "ltc", "--all"], input=person)
    assert r.exit_code == 0 and "current" in r.output and "verified" in r.output
    r = run(main, base + ["verify"])
    assert r.exit_code == 0 and "0 failed" in r.output
    r = run(main, base + ["rescore", "--set", "gbt42195-2022.raise_stacking=additive"])
    assert r.exit_code == 0 and "re-scored" in r.output
    r = run(main, base + ["audit", "--json"])
    rows = json.loads(r.output)
    assert r.exit_code == 0 and [x["action"] for x in rows] == ["recognise", "lookup"]
    r = run(main, base + ["lookup", "--department", "nhsa", "--purpose", "nope"], input=person)
    assert r.exit_code == 2 and "STORE_007" in r.output


def test_lookup_never_takes_the_number_from_argv():
    from assess.store.cli import lookup_cmd
    assert not [p for p in lookup_cmd.params if p.name in ("id_number", "person", "number")]
    assert all(p.param_type_name == "option" for p in lookup_cmd.params)
