"""Excel and Parquet inputs, demo data end to end, and the CLI with its HTML report."""
import collections
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from assess import demo_data
from assess.cli import main
from assess.screen import screen
from screen_helpers import AS_OF, good_row, write_rows

# Which code a demo fault must produce (under_60 is a warning, the row is still scored).
EXPECTED = {"bad_code": "RESP_002", "missing_item": "RESP_003", "non_numeric": "ROW_009", "id_malformed": "ROW_001",
            "id_check": "ROW_002", "id_legacy": "ROW_011", "id_date": "ROW_003", "birth_mismatch": "ROW_005",
            "sex_mismatch": "ROW_006", "duplicate": "ROW_008", "region_bad": "ROW_010", "inconsistent": "RESP_004",
            "bad_icd": "RESP_005", "empty_row": "ROW_016", "under_60": "ROW_007", "id_as_number": "ROW_004"}


def _by_line(path):
    import csv
    with open(path, encoding="utf-8-sig") as f:
        out = collections.defaultdict(set)
        for r in csv.DictReader(f):
            out[int(r["line"])].add(r["code"])
    return out


def _check_demo(tmp_path, name, rows=3000, seed=3):
    src = tmp_path / name
    kinds = demo_data.write(src, rows=rows, seed=seed, bad_share=0.25, as_of=AS_OF)
    expected = set(demo_data.BAD_KINDS) - {"duplicate"}
    if name.endswith(".xlsx"):
        expected = expected - {"empty_row"} | {"id_as_number"}
    assert set(k for k in kinds if k) >= expected
    s = screen(src, "gbt42195-2022", tmp_path / "out.parquet", as_of=AS_OF)
    st = s.stats
    assert st.rows_read == rows == st.scored + st.rejected
    found = _by_line(s.rejects)
    for i, kind in enumerate(kinds):
        line = i + 2
        if kind:
            assert EXPECTED[kind] in found[line], (line, kind, found[line])
    out = pq.read_table(tmp_path / "out.parquet")
    scored_lines = set(out.column("source_line").to_pylist())
    rejected = {ln for ln, codes in found.items() if codes - {"ROW_007"}}
    assert not scored_lines & rejected and len(scored_lines) + len(rejected) == rows
    assert out.schema.field("A.2.8").type == pa.string()
    lv = collections.Counter(out.column("level").to_pylist())
    assert lv[0] + lv[1] > lv[2] + lv[3] + lv[4] > 0          # most people at level 0–1, some at 2–4
    return s


def test_demo_csv(tmp_path):
    _check_demo(tmp_path, "demo.csv")


def test_demo_parquet(tmp_path):
    _check_demo(tmp_path, "demo.parquet")


def test_demo_xlsx_catches_id_stored_as_number(tmp_path):
    s = _check_demo(tmp_path, "demo.xlsx", rows=1500)
    assert s.stats.errors["ROW_004"] > 0


def test_demo_gb18030_csv(tmp_path):
    src = tmp_path / "gb.csv"
    demo_data.write(src, rows=200, seed=1, as_of=AS_OF, encoding="gb18030")
    src.read_bytes().decode("gb18030")
    s = screen(src, "gbt42195-2022", tmp_path / "out.csv", as_of=AS_OF)
    assert s.encoding == "gb18030" and s.stats.scored == 200


def test_parquet_id_column_as_integer_is_rejected(tmp_path, ins):
    rows = [good_row(ins, 0), good_row(ins, 1)]
    table = pa.table({k: [r[k] for r in rows] for k in rows[0]})
    table = table.set_column(0, "A.2.8", pa.array([int(r["A.2.8"][:17]) * 10 for r in rows], pa.int64()))
    pq.write_table(table, tmp_path / "in.parquet")
    s = screen(tmp_path / "in.parquet", "gbt42195-2022", tmp_path / "out.parquet", as_of=AS_OF)
    assert s.stats.rejected == 2 and s.stats.errors["ROW_004"] == 2


def test_cli_screen_and_report(tmp_path):
    runner = CliRunner()
    src = tmp_path / "demo.csv"
    r = runner.invoke(main, ["demo-data", "--rows", "500", "--out", str(src), "--bad-share", "0.1",
                             "--as-of", AS_OF.isoformat()])
    assert r.exit_code == 0, r.output
    out, rep = tmp_path / "out.parquet", tmp_path / "report.html"
    r = runner.invoke(main, ["screen", str(src), "--instrument", "gbt42195-2022", "--out", str(out),
                             "--report", str(rep), "--as-of", AS_OF.isoformat()])
    assert r.exit_code == 0, r.output
    assert "rows read: 500 = " in r.output
    html = rep.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 4 and "各行政区划" in html
    r = runner.invoke(main, ["screen", str(src), "--instrument", "gbt42195-2022", "--out", str(tmp_path / "o.xlsx")])
    assert r.exit_code == 2 and "FILE_004" in r.output


def test_demo_people_are_distinct_across_chunks():
    """Sequence codes are handed out per county, birth date and sex across the whole file, as a
    registry does; random ones would make large demo files full of accidental duplicates."""
    used = demo_data.new_sequence_counts()
    ids = []
    for start in (0, 30_000):
        table, kind = demo_data.generate(rows=30_000, seed=4, as_of=AS_OF, start=start, used=used)
        ids += table.column("公民身份号码").to_pylist()
    assert len(set(ids)) == len(ids) == 60_000


def test_demo_data_says_which_instrument_it_can_write(tmp_path):
    """demo-data draws GB/T 42195 answers; for another instrument it says so instead of failing inside numpy."""
    from click.testing import CliRunner
    from assess.cli import main
    result = CliRunner().invoke(main, ["demo-data", "--instrument", "mzt039-2013", "--rows", "10",
                                       "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and "gbt42195-2022 screening files only, not mzt039-2013" in result.output
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_screen_command_keeps_freed_memory_on_glibc():
    from assess.screen.cli import keep_freed_memory
    assert keep_freed_memory()


def test_screen_command_sets_its_process_settings(tmp_path, ins):
    """numpy's 2 MB pages off and the short GIL switch interval (assess/screen/cli.py); the
    autouse fixture of conftest.py puts both back."""
    from assess.screen.cli import SWITCH_INTERVAL_S, numpy_huge_page_setter
    setter = numpy_huge_page_setter()
    src = write_rows(tmp_path / "in.csv", [good_row(ins, n) for n in range(3)])
    sys.setswitchinterval(0.005)
    if setter is not None:
        setter(True)
    r = CliRunner().invoke(main, ["screen", str(src), "--instrument", "gbt42195-2022",
                                  "--out", str(tmp_path / "out.parquet"), "--as-of", AS_OF.isoformat()])
    assert r.exit_code == 0, r.output
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
    if setter is not None:
        assert setter(True) is False      # the setter returns the value it replaces


def _csv_with_names(tmp_path, ins, names):
    return write_rows(tmp_path / "in.csv", [good_row(ins, n, **{"A.2.1": name}) for n, name in enumerate(names)])


@pytest.mark.parametrize("batch_rows", [7, 60, 262_144])
def test_quoted_cells_with_line_breaks_are_never_cut(tmp_path, ins, batch_rows):
    """RFC 4180: a quoted cell may hold line breaks and doubled quotes. Chunks are cut only after a
    line feed outside quotes, so no record is split in two (which would reject one good row as two
    ragged lines and shift every later line number), whatever the chunk size."""
    names = ['张\n三' if n % 2 else '李"四"\n五' if n % 3 == 0 else "王五" for n in range(400)]
    path = _csv_with_names(tmp_path, ins, names)
    s = screen(path, "gbt42195-2022", tmp_path / "out.parquet", as_of=AS_OF, batch_rows=batch_rows)
    assert (s.stats.rows_read, s.stats.scored, s.stats.rejected) == (400, 400, 0)
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column("A.2.1").to_pylist() == names
    # Records are numbered as pyarrow's reader numbers them (header = 1), whatever the chunk size.
    assert out.column("source_line").to_pylist() == list(range(2, 402))


def test_a_stray_quote_inside_a_cell_still_ends(tmp_path, ins):
    """A quote in the middle of an unquoted cell leaves no line feed 'outside quotes' after it; the
    chunk is then cut at its last line feed, as before, instead of growing to the whole file."""
    path = tmp_path / "in.csv"
    rows = [good_row(ins, n) for n in range(300)]
    text = [",".join(rows[0])] + [",".join(r.values()) for r in rows]
    text[5] = text[5].replace("张三", 'Zhang"San', 1)
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    s = screen(path, "gbt42195-2022", tmp_path / "out.parquet", as_of=AS_OF, batch_rows=20)
    assert s.stats.rows_read == s.stats.scored + s.stats.rejected >= 299
