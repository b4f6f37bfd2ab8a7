"""Files as users send them, and runs as users stop them: damaged bytes, outputs named like the
input, timestamps from pandas, padded region codes, a kill mid-run. Each case was found by trying
the command as a province office would (not derived from a clause of the standard)."""
import csv
import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from assess import demo_data
from assess.cli import main
from assess.errors import AssessError
from assess.screen import screen
from assess.screen.reader import detect_encoding
from screen_helpers import AS_OF, good_row, person_id, write_rows


def _rejects(path):
    with open(path, encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def _rows(ins, n):
    """n valid rows of n different people (men, as good_row's sex says: odd sequence codes)."""
    rows = []
    for i in range(n):
        birth = dt.date(1950, 1, 2) + dt.timedelta(days=i // 500)
        rows.append(good_row(ins, i, **{"A.2.8": person_id(birth.strftime("%Y%m%d"), f"{2 * (i % 500) + 1:03d}"),
                                        "A.2.3": birth.isoformat()}))
    return rows


def _spoil_line(path, line, old: bytes, new: bytes):
    lines = path.read_bytes().split(b"\n")
    assert old in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_bytes(b"\n".join(lines))


@pytest.mark.parametrize("rows", [30, 12_000])     # the damaged line inside and beyond the sniffed 1 MB
def test_a_line_not_in_utf8_is_rejected_and_the_rest_scored(tmp_path, ins, rows):
    src = write_rows(tmp_path / "in.csv", _rows(ins, rows))
    bad_line = rows - 5
    _spoil_line(src, bad_line, "张三".encode(), "张".encode() + b"\xff")
    assert detect_encoding(src) == "utf-8"
    s = screen(src, ins, tmp_path / "out.parquet", as_of=AS_OF)
    assert (s.stats.rows_read, s.stats.scored, s.stats.rejected) == (rows, rows - 1, 1)
    [r] = _rejects(s.rejects)
    assert (int(r["line"]), r["column"], r["code"]) == (bad_line, "A.2.1", "ROW_017")
    assert "UTF-8" in r["message"] and "\ufffd" in r["value"]
    lines = pq.read_table(tmp_path / "out.parquet").column("source_line").to_pylist()
    assert lines == [ln for ln in range(2, rows + 2) if ln != bad_line]


def test_undecodable_lines_and_malformed_lines_keep_their_numbers(tmp_path, ins):
    src = write_rows(tmp_path / "in.csv", _rows(ins, 12))
    data = src.read_bytes().replace(b"\r\n", b"\n").split(b"\n")
    data[6] += b",extra"                                  # line 7: a cell too many (ROW_015)
    data[9] = data[9].replace("张三".encode(), b"\xfe\xff")  # line 10: not UTF-8 (ROW_017)
    data[11] = b""                                        # line 12: empty (ROW_016)
    src.write_bytes(b"\n".join(data))
    s = screen(src, ins, tmp_path / "out.parquet", as_of=AS_OF)
    assert [(int(r["line"]), r["code"]) for r in _rejects(s.rejects)] == [(7, "ROW_015"), (10, "ROW_017"),
                                                                          (12, "ROW_016")]
    lines = pq.read_table(tmp_path / "out.parquet").column("source_line").to_pylist()
    assert lines == [2, 3, 4, 5, 6, 8, 9, 11, 13]


def test_undecodable_bytes_in_a_quoted_file_stop_with_the_line(tmp_path, ins):
    rows = _rows(ins, 10)
    rows[2]["A.2.1"] = "张,三"                            # quoted by the writer
    src = write_rows(tmp_path / "in.csv", rows)
    _spoil_line(src, 8, "张三".encode(), b"\xff")
    with pytest.raises(AssessError) as err:
        screen(src, ins, tmp_path / "out.parquet", as_of=AS_OF)
    assert err.value.code.name == "FILE_001" and "第8行" in str(err.value)
    assert not (tmp_path / "out.parquet").exists()


def test_a_gb18030_file_is_still_read_as_gb18030(tmp_path, ins):
    src = tmp_path / "in.csv"
    write_rows(tmp_path / "utf8.csv", _rows(ins, 50))
    src.write_bytes((tmp_path / "utf8.csv").read_text(encoding="utf-8").encode("gb18030"))
    assert detect_encoding(src) == "gb18030"
    assert screen(src, ins, tmp_path / "out.parquet", as_of=AS_OF).stats.scored == 50


def test_the_line_of_a_row_with_too_many_cells_masks_its_id_number(tmp_path, ins):
    rows = _rows(ins, 3)
    src = write_rows(tmp_path / "in.csv", rows)
    _spoil_line(src, 3, rows[1]["A.2.8"].encode(), rows[1]["A.2.8"].encode() + b",extra")
    s = screen(src, ins, tmp_path / "out.parquet", as_of=AS_OF)
    [r] = _rejects(s.rejects)
    number = rows[1]["A.2.8"]
    assert r["code"] == "ROW_015" and number not in r["value"]
    assert number[:6] + "*" * 11 + number[-1] in r["value"]


@pytest.mark.parametrize("flag", ["--out", "--rejects", "--report"])
def test_an_output_named_like_the_input_is_refused_before_reading(tmp_path, ins, flag):
    src = write_rows(tmp_path / "in.csv", _rows(ins, 3))
    before = src.read_bytes()
    args = ["screen", str(src), "--instrument", "gbt42195-2022", "--out", str(tmp_path / "o.parquet")]
    args += [flag, str(src)] if flag != "--out" else []
    if flag == "--out":
        args[-1] = str(src)
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "FILE_004" in r.output and "INPUT" in r.output
    assert src.read_bytes() == before


def test_two_outputs_under_one_name_are_refused(tmp_path, ins):
    src = write_rows(tmp_path / "in.csv", _rows(ins, 3))
    with pytest.raises(AssessError) as err:
        screen(src, ins, tmp_path / "o.csv", rejects=tmp_path / "o.csv", as_of=AS_OF)
    assert err.value.code.name == "FILE_004" and "OUT" in str(err.value)
    assert not (tmp_path / "o.csv").exists()


def test_a_report_in_a_missing_folder_is_refused_before_any_output(tmp_path, ins):
    src = write_rows(tmp_path / "in.csv", _rows(ins, 3))
    with pytest.raises(AssessError) as err:
        screen(src, ins, tmp_path / "o.parquet", report=tmp_path / "nodir" / "r.html", as_of=AS_OF)
    assert err.value.code.name == "FILE_004"
    assert not (tmp_path / "o.parquet").exists()


def test_birth_dates_stored_as_timestamps_read_as_dates(tmp_path, ins):
    rows = _rows(ins, 4)
    table = pa.table({k: [r[k] for r in rows] for k in rows[0]})
    stamps = pa.array([f"{r['A.2.3']}T00:00:00" for r in rows]).cast(pa.timestamp("ns"))
    table = table.set_column(table.schema.get_field_index("A.2.3"), "A.2.3", stamps)
    pq.write_table(table, tmp_path / "in.parquet")
    s = screen(tmp_path / "in.parquet", ins, tmp_path / "out.parquet", as_of=AS_OF)
    assert s.stats.scored == 4
    assert pq.read_table(tmp_path / "out.parquet").column("A.2.3").to_pylist() == [r["A.2.3"] for r in rows]


def test_a_damaged_parquet_file_stops_with_a_coded_error(tmp_path, ins):
    rows = _rows(ins, 3000)
    table = pa.table({k: [r[k] for r in rows] for k in rows[0]})
    pq.write_table(table, tmp_path / "in.parquet", compression="none", row_group_size=1000)
    data = bytearray((tmp_path / "in.parquet").read_bytes())
    start = pq.ParquetFile(tmp_path / "in.parquet").metadata.row_group(1).column(0).data_page_offset
    data[start + 20:start + 2000] = b"\xff" * 1980
    (tmp_path / "bad.parquet").write_bytes(bytes(data))
    with pytest.raises(AssessError) as err:
        screen(tmp_path / "bad.parquet", ins, tmp_path / "out.parquet", as_of=AS_OF)
    assert err.value.code.name == "FILE_001"
    assert not (tmp_path / "out.parquet").exists()


def test_region_codes_with_spaces_around_count_as_the_code(tmp_path, ins):
    rows = _rows(ins, 3)
    rows[0]["region"], rows[1]["region"] = " 110105", "110105\t"
    s = screen(write_rows(tmp_path / "in.csv", rows), ins, tmp_path / "out.parquet", as_of=AS_OF)
    assert list(s.stats.regions) == ["110105"] and s.stats.regions["110105"].sum() == 3
    assert pq.read_table(tmp_path / "out.parquet").column("region").to_pylist() == ["110105"] * 3


def test_a_file_without_id_numbers_says_what_went_unchecked(tmp_path, ins):
    rows = [{k: v for k, v in r.items() if k != "A.2.8"} for r in _rows(ins, 3)]
    r = CliRunner().invoke(main, ["screen", str(write_rows(tmp_path / "in.csv", rows)), "--instrument",
                                  "gbt42195-2022", "--out", str(tmp_path / "o.parquet")])
    assert r.exit_code == 0 and "没有公民身份号码列" in r.output


def test_demo_data_is_the_same_for_a_seed_whatever_the_hash_seed(tmp_path):
    def run(hash_seed, name):
        env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
        subprocess.run([sys.executable, "-m", "assess", "demo-data", "--rows", "2000", "--bad-share", "0.1",
                        "--seed", "5", "--as-of", AS_OF.isoformat(), "--out", str(tmp_path / name)],
                       check=True, env=env, capture_output=True)
        return (tmp_path / name).read_bytes()
    assert run(1, "a.csv") == run(2, "b.csv")


def test_demo_data_refuses_no_rows(tmp_path):
    r = CliRunner().invoke(main, ["demo-data", "--rows", "0", "--out", str(tmp_path / "z.csv")])
    assert r.exit_code == 2 and not (tmp_path / "z.csv").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_leaves_no_file_aside_and_a_later_run_clears_a_killed_ones(tmp_path):
    src = tmp_path / "in.csv"
    demo_data.write(src, rows=400_000, seed=1, bad_share=0.01, as_of=AS_OF)
    out = tmp_path / "out.parquet"

    command = [sys.executable, "-m", "assess", "screen", str(src), "--instrument", "gbt42195-2022", "--out", str(out),
               "--as-of", AS_OF.isoformat(), "--batch-rows", "20000"]

    def start():
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def aside():
        return sorted(p.name for p in tmp_path.glob(".*.partial"))

    def once_writing(proc):
        deadline = time.monotonic() + 60
        while not aside() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return proc.poll() is None

    proc = start()
    if not once_writing(proc):
        pytest.skip("the run ended before it could be stopped")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 128 + signal.SIGTERM
    assert aside() == [] and not out.exists()
    for delay in (0.3, 0.6, 0.9, 1.2):        # stops while starting up, opening the files, or reading
        proc = start()
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        assert aside() == [], delay

    proc = start()
    if not once_writing(proc):
        pytest.skip("the run ended before it could be stopped")
    proc.kill()
    proc.wait(60)
    assert aside()                                  # SIGKILL cannot be caught: its files stay aside
    subprocess.run(command, check=True, capture_output=True)
    assert aside() == [] and out.exists()


def test_an_id_number_stored_as_a_number_is_not_compared_with_sex_or_birth(tmp_path, ins):
    openpyxl = pytest.importorskip("openpyxl")
    rows = _rows(ins, 2)
    woman = person_id("19500102", "002")                  # an even sequence code: a woman's number
    rows[1].update({"A.2.8": int(woman), "A.2.2": "男", "A.2.3": "1950-01-03"})
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(list(rows[0]))
    for r in rows:
        sheet.append(list(r.values()))
    book.save(tmp_path / "in.xlsx")
    s = screen(tmp_path / "in.xlsx", ins, tmp_path / "out.parquet", as_of=AS_OF)
    assert [(int(r["line"]), r["code"]) for r in _rejects(s.rejects)] == [(3, "ROW_004")]


@pytest.mark.parametrize("name", ["r.csv", "r.parquet"])
def test_rejects_is_opened_inside_the_run_not_when_made(tmp_path, name):
    """A stop between making the writers and the run's guard (which removes what is aside) must find
    nothing aside: SIGTERM once left a REJECTS file opened at construction behind."""
    from assess.screen.writer import REJECT_COLUMNS, RejectsWriter
    w = RejectsWriter(tmp_path / name)
    assert list(tmp_path.iterdir()) == []
    w.commit()                                        # no problem at all: header only
    if name.endswith(".csv"):
        assert (tmp_path / name).read_text(encoding="utf-8-sig").strip() == ",".join(REJECT_COLUMNS)
    else:
        assert pq.read_table(tmp_path / name).num_rows == 0


def test_a_file_whose_every_row_is_damaged_is_still_read_as_utf8(tmp_path, ins):
    """The header's Chinese in UTF-8 settles the encoding even when no data line decodes; a chunk
    left empty by the damaged lines is an empty table, not an empty-file error."""
    rows = _rows(ins, 3)
    src = write_rows(tmp_path / "in.csv", rows)
    for line in (2, 3, 4):
        _spoil_line(src, line, "张三".encode(), b"\xff")
    text = src.read_bytes()
    src.write_bytes(text.replace(b"A.2.1", "姓名".encode(), 1))     # a Chinese header, as exports have
    assert detect_encoding(src) == "utf-8"
    s = screen(src, ins, tmp_path / "out.parquet", as_of=AS_OF)
    assert (s.stats.rows_read, s.stats.scored, s.stats.rejected) == (3, 0, 3)
    assert [(int(r["line"]), r["code"], r["column"]) for r in _rejects(s.rejects)] == \
        [(2, "ROW_017", "姓名"), (3, "ROW_017", "姓名"), (4, "ROW_017", "姓名")]


def test_region_codes_are_copied_only_when_one_needs_trimming():
    """A province file's batches nearly always hold a few wrong codes (rejected, ROW_010); reading
    the whole column in Python for them cost one run 6 s, so such a batch's column is kept as it is."""
    from assess.screen.run import _trimmed
    clean = pa.array(["110105"] * 1000 + ["11010", None, "abcdefg"])
    kept = _trimmed(pa.chunked_array([clean]))
    assert kept.buffers()[2].address == clean.buffers()[2].address      # the same bytes, not a copy
    spaced = pa.array(["110105", " 110106", None, "11010"])
    assert _trimmed(pa.chunked_array([spaced])).to_pylist() == ["110105", "110106", None, "11010"]
