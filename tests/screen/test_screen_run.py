"""assess screen: every reject kind lands in REJECTS with code, line and column; nothing is lost."""
import csv
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assess.screen import ScreenError, screen
from assess.screen import run as run_mod

from screen_helpers import AS_OF, good_row, person_id

IDENT_HEAD = {"A.2.8": "公民身份号码", "A.2.1": "姓名", "A.2.3": "出生日期", "A.2.2": "性别", "region": "行政区划代码"}


def header(ins, labels=True):
    cols = list(IDENT_HEAD.values()) if labels else list(IDENT_HEAD)
    qs = [q.label.zh if labels else q.id for q in (*ins.items, *ins.fields)]
    return cols + qs


def write_csv(path, ins, rows, labels=True, encoding="utf-8", raw_lines=()):
    ids = list(IDENT_HEAD) + [q.id for q in (*ins.items, *ins.fields)]
    with open(path, "w", encoding=encoding, newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header(ins, labels))
        for r in rows:
            if isinstance(r, str):
                f.write(r + "\n")
            else:
                w.writerow([r.get(c, "") for c in ids])
    return path


def rejects(path):
    with open(path, encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def run(tmp_path, src, **kw):
    out = tmp_path / kw.pop("out_name", "out.parquet")
    s = screen(src, "gbt42195-2022", out, as_of=AS_OF, **kw)
    assert s.stats.rows_read == s.stats.scored + s.stats.rejected
    return s, out, rejects(s.rejects) if s.rejects.suffix == ".csv" else None


BAD = [  # (override, expected code, expected field)
    ({"B.1.1": "7"}, "RESP_002", "B.1.1"),
    ({"B.2.4": ""}, "RESP_003", "B.2.4"),
    ({"B.1.6": "四"}, "ROW_009", "B.1.6"),
    ({"B.3.9": "2", "A.5.11": "1"}, "RESP_004", "A.5.11"),
    ({"A.4.1": "痴呆"}, "RESP_005", "A.4.1"),
    ({"A.2.8": "1101051950010201"}, "ROW_001", "A.2.8"),
    ({"A.2.8": person_id()[:17] + ("0" if person_id()[17] != "0" else "1")}, "ROW_002", "A.2.8"),
    ({"A.2.8": (lambda b: b + __import__("assess").idnumber.check_char(b))("11010519501302011")}, "ROW_003", "A.2.8"),
    ({"A.2.8": "110105500102011"}, "ROW_011", "A.2.8"),
    ({"A.2.8": ""}, "ROW_012", "A.2.8"),
    ({"A.2.3": "1950-01-03"}, "ROW_005", "A.2.3"),
    ({"A.2.2": "女"}, "ROW_006", "A.2.2"),
    ({"A.2.3": "1950-13-40"}, "ROW_013", "A.2.3"),
    ({"A.2.2": "X"}, "ROW_014", "A.2.2"),
    ({"region": "11010"}, "ROW_010", "region"),
    ({"region": "1101050"}, "ROW_010", "region"),
]


@pytest.mark.parametrize("over, code, field", BAD, ids=[b[1] for b in BAD])
def test_each_reject_kind(tmp_path, ins, over, code, field):
    rows = [good_row(ins, 0), good_row(ins, 1, **over), good_row(ins, 2)]
    s, out, rej = run(tmp_path, write_csv(tmp_path / "in.csv", ins, rows))
    assert (s.stats.rows_read, s.stats.scored, s.stats.rejected) == (3, 2, 1)
    errors = [r for r in rej if r["severity"] == "error"]
    assert {r["line"] for r in errors} == {"3"}                  # header = line 1
    first = errors[0]
    assert (first["code"], first["field"]) == (code, field)
    assert first["column"] == (IDENT_HEAD.get(field) or ins.question(field).label.zh)
    assert first["message"].startswith("第3行")
    assert pq.read_table(out).column("source_line").to_pylist() == [2, 4]


def test_full_id_number_never_in_rejects(tmp_path, ins):
    bad = person_id()[:17] + "0" if person_id()[17] != "0" else person_id()[:17] + "1"
    rows = [good_row(ins, 0, **{"A.2.8": bad})]
    s, out, rej = run(tmp_path, write_csv(tmp_path / "in.csv", ins, rows))
    text = (s.rejects).read_text(encoding="utf-8-sig")
    assert bad not in text and bad[:6] in text


def test_empty_row_and_wrong_cell_count(tmp_path, ins):
    n_cols = len(header(ins))
    rows = [good_row(ins, 0), "," * (n_cols - 1), "1,2,3", good_row(ins, 1)]
    for threads in (True, False):
        s, out, rej = run(tmp_path, write_csv(tmp_path / "in.csv", ins, rows), threads=threads)
        assert (s.stats.rows_read, s.stats.scored, s.stats.rejected) == (4, 2, 2)
        assert [(r["line"], r["code"]) for r in rej] == [("3", "ROW_016"), ("4", "ROW_015")]
        assert pq.read_table(out).column("source_line").to_pylist() == [2, 5]


def test_same_person_twice(tmp_path, ins):
    rows = [good_row(ins, 0), good_row(ins, 1), good_row(ins, 0), good_row(ins, 0)]
    s, out, rej = run(tmp_path, write_csv(tmp_path / "in.csv", ins, rows), batch_rows=2)
    assert s.stats.scored == 2 and s.stats.rejected == 2
    assert [(r["line"], r["code"]) for r in rej] == [("4", "ROW_008"), ("5", "ROW_008")]
    assert "第 2 行" in rej[0]["message"]


def test_duplicate_of_a_rejected_row_is_scored(tmp_path, ins):
    rows = [good_row(ins, 0, **{"B.1.1": "9"}), good_row(ins, 0)]
    s, out, rej = run(tmp_path, write_csv(tmp_path / "in.csv", ins, rows))
    assert s.stats.scored == 1 and [r["code"] for r in rej] == ["RESP_002"]


def test_under_60_is_a_warning_by_default(tmp_path, ins):
    young = {"A.2.8": person_id(birth="19700102"), "A.2.3": "1970-01-02"}
    rows = [good_row(ins, 0, **young)]
    src = write_csv(tmp_path / "in.csv", ins, rows)
    s, out, rej = run(tmp_path, src)
    assert s.stats.scored == 1 and [(r["code"], r["severity"]) for r in rej] == [("ROW_007", "warning")]
    s, out, rej = run(tmp_path, src, under_60="reject")
    assert s.stats.rejected == 1 and rej[0]["severity"] == "error"


def test_60th_birthday_is_not_under_60(tmp_path, ins):
    rows = [good_row(ins, 0, **{"A.2.8": person_id(birth="19660115"), "A.2.3": "1966-01-15"}),
            good_row(ins, 1, **{"A.2.8": person_id(birth="19660116", seq="013"), "A.2.3": "1966-01-16"})]
    s, out, rej = run(tmp_path, write_csv(tmp_path / "in.csv", ins, rows))
    assert [(r["line"], r["code"]) for r in rej] == [("3", "ROW_007")]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_csv_encodings(tmp_path, ins, encoding):
    rows = [good_row(ins, i) for i in range(3)] + [good_row(ins, 9, **{"B.1.1": "好"})]
    s, out, rej = run(tmp_path, write_csv(tmp_path / "in.csv", ins, rows, encoding=encoding))
    assert s.stats.scored == 3 and rej[0]["value"] == "好" and rej[0]["column"] == "进食"
    assert pq.read_table(out).column("A.2.1").to_pylist() == ["张三"] * 3


def test_ids_and_labels_and_map(tmp_path, ins):
    rows = [good_row(ins, 0)]
    s, out, _ = run(tmp_path, write_csv(tmp_path / "ids.csv", ins, rows, labels=False))
    assert s.stats.scored == 1
    path = write_csv(tmp_path / "odd.csv", ins, rows)
    text = path.read_text(encoding="utf-8").replace("进食", "吃饭", 1).replace("公民身份号码", "证件号", 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScreenError) as e:
        run(tmp_path, path)
    assert e.value.code.name == "FILE_002" and "B.1.1" in str(e.value)
    s, out, _ = run(tmp_path, path, mapping={"吃饭": "B.1.1", "证件号": "A.2.8"})
    assert s.stats.scored == 1 and pq.read_table(out).column("A.2.8").to_pylist() == [rows[0]["A.2.8"]]


def test_two_columns_for_one_item_is_an_error(tmp_path, ins):
    path = write_csv(tmp_path / "in.csv", ins, [good_row(ins, 0)])
    with pytest.raises(ScreenError) as e:
        run(tmp_path, path, mapping={"修饰": "B.1.1"})
    assert e.value.code.name == "FILE_003"


def test_out_columns_and_csv_out(tmp_path, ins):
    rows = [good_row(ins, 0, **{"A.2.8": person_id()[:17] + "x" if person_id()[17] == "X" else person_id()})]
    s, out, _ = run(tmp_path, write_csv(tmp_path / "in.csv", ins, rows))
    t = pq.read_table(out)
    assert t.column_names[:6] == ["A.2.8", "A.2.1", "A.2.3", "A.2.2", "region", "source_line"]
    assert t.schema.field("A.2.8").type == pa.string() and t.schema.field("region").type == pa.string()
    for c in ("B.1.1", "A.4.1", "B.1", "total", "level_initial", "level", "rules", "rule_R1", "status", "error_field"):
        assert c in t.column_names
    assert t.column("total").to_pylist() == [90] and t.column("status").to_pylist() == ["ok"]
    s, out_csv, _ = run(tmp_path, write_csv(tmp_path / "in.csv", ins, rows), out_name="out.csv")
    with open(out_csv, encoding="utf-8") as f:
        got = list(csv.DictReader(f))
    assert got[0]["A.2.8"] == rows[0]["A.2.8"] and got[0]["region"] == "110105" and got[0]["level"] == "0"


def test_region_code_keeps_zeros_as_text(tmp_path, ins):
    rows = [good_row(ins, 0, region="110100")]
    s, out, _ = run(tmp_path, write_csv(tmp_path / "in.csv", ins, rows))
    assert pq.read_table(out).column("region").to_pylist() == ["110100"]


def test_interrupted_run_leaves_no_out(tmp_path, ins, monkeypatch):
    rows = [good_row(ins, i) for i in range(2000)]
    src = write_csv(tmp_path / "in.csv", ins, rows)
    calls = []
    real = run_mod.score

    def flaky(ins_, table):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(ins_, table)
    monkeypatch.setattr(run_mod, "score", flaky)
    out = tmp_path / "out.parquet"
    with pytest.raises(KeyboardInterrupt):
        screen(src, "gbt42195-2022", out, as_of=AS_OF, batch_rows=1, threads=False)
    assert len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_interrupted_on_the_main_thread_stops_every_stage(tmp_path, ins):
    # Interrupted between batches (here: from the progress callback) while the reader and checker
    # threads are ahead: no OUT, no REJECTS, and both stages end instead of waiting on full queues.
    rows = [good_row(ins, i) for i in range(3000)]
    src = write_csv(tmp_path / "in.csv", ins, rows)

    def progress(done, total):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        screen(src, "gbt42195-2022", tmp_path / "out.parquet", as_of=AS_OF, batch_rows=16, progress=progress)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]
    stages = [t for t in threading.enumerate() if t.name.startswith("assess-screen-")]
    for t in stages:
        t.join(5)
    assert not any(t.is_alive() for t in stages)


def test_empty_file_writes_empty_out(tmp_path, ins):
    s, out, rej = run(tmp_path, write_csv(tmp_path / "in.csv", ins, []))
    assert s.stats.rows_read == 0 and pq.read_table(out).num_rows == 0 and rej == []


@pytest.mark.parametrize("threads", [True, False])
def test_lines_across_many_chunks(tmp_path, ins, threads):
    """Chunks of a few KB: malformed and empty lines in many chunks keep every line number right."""
    n_cols = len(header(ins))
    rows, bad_lines, empty_lines = [], set(), set()
    for i in range(400):
        line = len(rows) + 2
        if i % 37 == 5:
            rows.append("1,2,3")
            bad_lines.add(line)
        elif i % 53 == 7:
            rows.append("," * (n_cols - 1))
            empty_lines.add(line)
        else:
            rows.append(good_row(ins, i))
    src = write_csv(tmp_path / "in.csv", ins, rows)
    src.write_bytes(src.read_bytes().rstrip(b"\n"))            # no newline after the last line
    s, out, rej = run(tmp_path, src, batch_rows=2, threads=threads)
    assert s.stats.rows_read == 400
    assert {int(r["line"]) for r in rej if r["code"] == "ROW_015"} == bad_lines
    assert {int(r["line"]) for r in rej if r["code"] == "ROW_016"} == empty_lines
    good = set(range(2, 402)) - bad_lines - empty_lines
    assert pq.read_table(out).column("source_line").to_pylist() == sorted(good)
