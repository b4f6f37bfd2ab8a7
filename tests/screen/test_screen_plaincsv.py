"""Plain CSV chunks read by the compiled loop (assess/screen/plaincsv.py) give exactly what pyarrow's
reader and the answer-code parser give: the same columns, and the same OUT and REJECTS from a whole
run. Chunks the loop must not take (quotes, carriage returns, ragged lines, bytes that are not
UTF-8) go to pyarrow, so odd files still screen as before."""
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from screen_helpers import AS_OF, good_row

from assess.screen import codes, plaincsv, reader
from assess.screen.run import screen

pytestmark = pytest.mark.skipif(not plaincsv.available(), reason="needs the compiled assess._screen")

ODD_CODES = ["0", "1", "4", " 3", "3 ", "\t2", "\u30003", "04", "4.0", "四", "127", "128", "-1", "", "  ", "x", "\x1c1"]
ODD_IDS = ["11010519491231002x", " 11010519491231002X", "110105194912310", "11010519491231002", "", "  ", "甲"]


def _rows(ins, n, rng):
    rows = []
    for i in range(n):
        row = good_row(ins, i)
        for q in rng.sample([it.id for it in ins.items], 3):
            row[q] = rng.choice(ODD_CODES)
        if rng.random() < 0.2:
            row["A.2.8"] = rng.choice(ODD_IDS)
        if rng.random() < 0.1:
            row["A.2.2"] = rng.choice(["", " 男", "女 ", "M", "x"])
        if rng.random() < 0.05:
            row = {k: "" for k in row}
        rows.append(row)
    return rows


def _write(path, rows, *, extra=""):
    header = list(rows[0]) + ["备注"]
    lines = [",".join(header)] + [",".join(list(r.values()) + ["n"]) for r in rows]
    text = "\n".join(lines) + "\n" + extra
    path.write_bytes(text.encode("utf-8"))
    return path


def _screen_both(tmp_path, src, monkeypatch, batch_rows=64):
    out = {}
    for name, fast in (("fast", True), ("arrow", False)):
        with monkeypatch.context() as m:
            if not fast:
                m.setattr(plaincsv, "available", lambda: False)
            s = screen(src, "gbt42195-2022", tmp_path / f"{name}.parquet", rejects=tmp_path / f"{name}.rejects.csv",
                       as_of=AS_OF, batch_rows=batch_rows)
        out[name] = (s.stats.to_dict(), pq.read_table(tmp_path / f"{name}.parquet"),
                     (tmp_path / f"{name}.rejects.csv").read_bytes())
    return out


def _same(out):
    (s1, t1, r1), (s2, t2, r2) = out["fast"], out["arrow"]
    assert s1 == s2
    assert t1.equals(t2)
    assert r1 == r2


def test_plain_file_screens_as_pyarrow_reads_it(tmp_path, ins, monkeypatch, seed=3):
    src = _write(tmp_path / "in.csv", _rows(ins, 400, random.Random(seed)))
    _same(_screen_both(tmp_path, src, monkeypatch))


@pytest.mark.parametrize("extra", ["", "\n", "1,2\n", '"a",b\n', "x\r\n"])
def test_odd_lines_go_to_pyarrow_with_the_same_result(tmp_path, ins, monkeypatch, extra):
    rows = _rows(ins, 150, random.Random(7))
    src = _write(tmp_path / "in.csv", rows, extra=extra)
    _same(_screen_both(tmp_path, src, monkeypatch))


def test_crlf_file(tmp_path, ins, monkeypatch):
    src = _write(tmp_path / "in.csv", _rows(ins, 100, random.Random(8)))
    src.write_bytes(src.read_bytes().replace(b"\n", b"\r\n"))
    _same(_screen_both(tmp_path, src, monkeypatch))


def test_no_newline_at_the_end(tmp_path, ins, monkeypatch):
    src = _write(tmp_path / "in.csv", _rows(ins, 50, random.Random(1)))
    src.write_bytes(src.read_bytes().rstrip(b"\n"))
    _same(_screen_both(tmp_path, src, monkeypatch))


def test_bytes_that_are_not_utf8_fall_back(tmp_path, ins):
    src = _write(tmp_path / "in.csv", _rows(ins, 20, random.Random(2)))
    data = src.read_bytes().replace("张三".encode(), b"\xff\xfe", 1)
    body = data[data.index(b"\n") + 1:]
    source = reader.open_source(src, ins)
    plan = plaincsv.Plan(source.header, source.columns.by_source, codes.int_coded(ins))
    assert plaincsv.parse(body, plan) is None
    assert plaincsv.parse(body.replace(b"\xff\xfe", "李四".encode()), plan) is not None


def test_columns_match_pyarrow_and_to_codes(tmp_path, ins):
    src = _write(tmp_path / "in.csv", _rows(ins, 300, random.Random(9)))
    source = reader.open_source(src, ins)
    data = src.read_bytes()[source.header_bytes:]
    plan = plaincsv.Plan(source.header, source.columns.by_source, codes.int_coded(ins))
    table, present, raw = plaincsv.parse(data, plan)
    positional, convert, names = source._options()
    ref, invalid = source._parse(data, False, positional, convert)
    ref = ref.rename_columns(names)
    assert not invalid and table.column_names == ref.column_names
    for cid in table.column_names:
        want = ref.column(cid).combine_chunks()
        if cid in plan.codes:
            assert table.column(cid).combine_chunks().to_pylist() == codes.to_codes(want).to_pylist(), cid
        else:
            assert table.column(cid).combine_chunks().equals(want), cid
    assert raw.columns(np.arange(table.num_rows), plan.names) == ref.to_pydict()
    valid = np.zeros(table.num_rows, bool)
    for col in ref.columns:
        valid |= np.asarray(col.is_valid())
    assert (present == valid).all()


def test_plain_chunks_take_the_compiled_path(tmp_path, ins):
    src = _write(tmp_path / "in.csv", _rows(ins, 30, random.Random(4)))
    chunks = list(reader.open_source(src, ins).batches())
    assert all(c.raw is not None for c in chunks)
    quoted = tmp_path / "q.csv"
    quoted.write_bytes(src.read_bytes().replace(b",n\n", b',"n"\n'))
    chunks = list(reader.open_source(quoted, ins).batches())
    assert all(c.raw is None for c in chunks) and sum(c.table.num_rows for c in chunks) == 30
    assert pa.types.is_string(chunks[0].table.column("B.1.1").type)


def test_more_lines_than_the_last_chunk_suggests(tmp_path, ins):
    # Room for rows is guessed from the chunk before; a chunk of far shorter lines (here: a guess of
    # one line per 10 kB) is parsed again with every line feed counted, and loses no row.
    src = _write(tmp_path / "in.csv", _rows(ins, 300, random.Random(9)))
    source = reader.open_source(src, ins)
    data = src.read_bytes()[source.header_bytes:]
    plan = plaincsv.Plan(source.header, source.columns.by_source, codes.int_coded(ins))
    want = plaincsv.parse(data, plan)[0]
    plan.lines_per_byte = 1e-4
    got = plaincsv.parse(data, plan)[0]
    assert got.num_rows == 300 and got.equals(want)
