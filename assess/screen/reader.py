"""Read a screening file in record batches: CSV (UTF-8 or GB18030), .xlsx and Parquet.

Every reader yields :class:`Chunk` objects whose table has one column per recognised input column,
renamed to its id. Identity columns are text. Question columns stay as read (CSV: dictionary-encoded
text, so that no cell can fail a numeric conversion and validation happens once, in the scorer).
Each row keeps its input line (header = line 1), and rows the reader itself could not take (a CSV
line with the wrong number of cells) come back as ``problems`` so that no row is lost.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .. import model as m
from ..errors import Code, problem
from .columns import ID_NUMBER, IDENTITY, REGION, Columns, recognise
from .errors import ScreenError

TEXT_COLUMNS = (ID_NUMBER, REGION)     # must arrive as text; a number may have lost digits
DEFAULT_BATCH_ROWS = 262_144


@dataclass
class Chunk:
    table: pa.Table               # columns named by id
    lines: np.ndarray             # int64 input line of each row (header = 1)
    as_number: dict = field(default_factory=dict)   # id → bool mask: cell arrived as a number
    problems: list = field(default_factory=list)    # (line, column, value, Code, kw) for rows not in table
    progress: int = 0             # units done (bytes or rows), for the progress bar


class Source:
    """Base: ``columns`` (recognised), ``total`` (progress units), ``batches()``."""

    columns: Columns
    total: int
    kind: str

    def batches(self):  # pragma: no cover - interface
        raise NotImplementedError


def open_source(path, ins: m.Instrument, mapping: dict | None = None, *, batch_rows: int = DEFAULT_BATCH_ROWS,
                encoding: str | None = None, threads: bool = True) -> Source:
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ScreenError(problem(Code.FILE_001, where=str(path), detail="文件不存在"))
    if suffix == ".csv":
        return CsvSource(path, ins, mapping, batch_rows, encoding, threads)
    if suffix == ".parquet":
        return ParquetSource(path, ins, mapping, batch_rows)
    if suffix == ".xlsx":
        return XlsxSource(path, ins, mapping, batch_rows)
    raise ScreenError(problem(Code.FILE_001, where=str(path), detail=f"不支持的扩展名 {suffix or '（无）'}"))


# --------------------------------------------------------------------------- CSV

def detect_encoding(path) -> str:
    """UTF-8 (with or without BOM) when the start of the file decodes as UTF-8, else GB18030."""
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return "gb18030"


def _header(path, encoding: str) -> tuple[list[str], int]:
    with open(path, "rb") as f:
        raw = f.readline()
    text = raw.decode(encoding, errors="replace").lstrip("\ufeff")
    row = next(csv.reader(io.StringIO(text)), [])
    return [c.strip() for c in row], len(raw)


class _Restart(Exception):
    """A threaded read met a malformed line whose number it cannot tell; read again single-threaded."""


class CsvSource(Source):
    kind = "csv"

    def __init__(self, path, ins, mapping, batch_rows, encoding, threads):
        self.path, self.ins = path, ins
        self.encoding = (encoding or detect_encoding(path)).lower().replace("_", "-")
        try:
            header, header_bytes = _header(path, self.encoding)
        except LookupError as exc:
            raise ScreenError(problem(Code.FILE_001, where=str(path), detail=f"未知编码 {encoding}")) from exc
        if not any(header):
            raise ScreenError(problem(Code.FILE_001, where=str(path), detail="第1行没有表头"))
        self.header = header
        self.columns = recognise(ins, header, mapping, where=str(path))
        self.total = os.path.getsize(path)
        # Aim at batch_rows rows per block from the size of the first data rows.
        with open(path, "rb") as f:
            f.seek(header_bytes)
            sample = f.read(1 << 16)
        per_row = max(16, len(sample) // max(1, sample.count(b"\n"))) if sample else 256
        self.block_size = int(min(max(per_row * batch_rows, 1 << 16), 1 << 30))
        self.threads = threads

    def _reader(self, threads: bool, invalid: list):
        positional = [f"c{i}" for i in range(len(self.header))]
        include, types = [], {}
        for i, name in enumerate(self.header):
            cid = self.columns.by_source.get(name)
            if cid is None:
                continue
            include.append(positional[i])
            types[positional[i]] = pa.string() if cid in IDENTITY else pa.dictionary(pa.int32(), pa.string())

        def on_invalid(row):
            invalid.append((row.number, row))
            return "skip"

        f = pa.OSFile(str(self.path))
        reader = pacsv.open_csv(
            f,
            read_options=pacsv.ReadOptions(column_names=positional, skip_rows=1, block_size=self.block_size,
                                           use_threads=threads, encoding=self.encoding),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(include_columns=include, column_types=types,
                                                 strings_can_be_null=True, null_values=[""],
                                                 quoted_strings_can_be_null=True))
        names = [self.columns.by_source[self.header[int(c[1:])]] for c in include]
        return f, reader, names

    def batches(self):
        try:
            yield from self._batches(self.threads)
        except _Restart:
            yield _Restart                      # the caller discards what it has and starts again
            yield from self._batches(False)

    def _batches(self, threads: bool):
        invalid: list = []
        reported = 0
        bad_lines: list[int] = []
        done = 0
        f, reader, names = self._reader(threads, invalid)
        try:
            for batch in reader:
                if any(num is None for num, _ in invalid):
                    raise _Restart
                problems = []
                problems = [_invalid_problem(num, row) for num, row in invalid[reported:]]
                bad_lines.extend(num for num, _ in invalid[reported:])
                reported = len(invalid)
                bad_lines.sort()
                k = batch.num_rows
                lines = np.arange(done, done + k, dtype=np.int64) + 2
                for v in bad_lines:     # rows after a skipped line move down by one
                    lines[lines >= v] += 1
                done += k
                table = pa.Table.from_batches([batch]).rename_columns(names)
                yield Chunk(table, lines, {}, problems, f.tell())
        finally:
            f.close()
        if any(num is None for num, _ in invalid):
            raise _Restart
        tail = [_invalid_problem(num, row) for num, row in invalid[reported:]]
        if tail:
            yield Chunk(None, np.zeros(0, np.int64), {}, tail, self.total)


def _invalid_problem(num, row):
    if not row.text.strip():
        return (num, "", "", Code.ROW_016, {})
    return (num, "", _clip(row.text), Code.ROW_015, {"actual": row.actual_columns, "expected": row.expected_columns})


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[:n] + "…"


# --------------------------------------------------------------------------- Parquet

class ParquetSource(Source):
    kind = "parquet"

    def __init__(self, path, ins, mapping, batch_rows):
        self.path = path
        try:
            self.file = pq.ParquetFile(str(path))
        except (OSError, pa.ArrowException) as exc:
            raise ScreenError(problem(Code.FILE_001, where=str(path), detail=str(exc))) from exc
        header = self.file.schema_arrow.names
        self.columns = recognise(ins, header, mapping, where=str(path))
        self.total = self.file.metadata.num_rows
        self.batch_rows = batch_rows

    def batches(self):
        done = 0
        cols = list(self.columns.by_source)
        names = [self.columns.by_source[c] for c in cols]
        for batch in self.file.iter_batches(batch_size=self.batch_rows, columns=cols, use_threads=True):
            table = pa.Table.from_batches([batch]).rename_columns(names)
            as_number = {}
            for cid in self.columns.identity:
                col = table.column(cid)
                if cid in TEXT_COLUMNS and (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
                    as_number[cid] = np.asarray(col.is_valid())
                if not pa.types.is_string(col.type):
                    table = table.set_column(table.schema.get_field_index(cid), cid, _to_text(col))
            lines = np.arange(done, done + table.num_rows, dtype=np.int64) + 2
            done += table.num_rows
            yield Chunk(table, lines, as_number, [], done)


def _to_text(col) -> pa.ChunkedArray:
    if pa.types.is_floating(col.type):
        return pa.chunked_array([pa.array([None if v is None else _num_text(v) for v in col.to_pylist()],
                                          pa.string())])
    return col.cast(pa.string())


def _num_text(v) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


# --------------------------------------------------------------------------- Excel

class XlsxSource(Source):
    """First worksheet; row 1 is the header. Cells are read as Excel stored them, so an identity
    number stored as a number (15 significant digits, data-hygiene.md §3) is caught, not repaired."""

    kind = "xlsx"

    def __init__(self, path, ins, mapping, batch_rows):
        import openpyxl
        self.path = path
        try:
            self.book = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many kinds for a broken file
            raise ScreenError(problem(Code.FILE_001, where=str(path), detail=f"{type(exc).__name__}: {exc}")) from exc
        self.sheet = self.book.worksheets[0]
        rows = self.sheet.iter_rows(min_row=1, max_row=1, values_only=True)
        header = [("" if v is None else str(v)).strip() for v in next(rows, ())]
        self.header = header
        self.columns = recognise(ins, header, mapping, where=str(path))
        self.total = max(0, (self.sheet.max_row or 1) - 1)
        self.batch_rows = min(batch_rows, 65_536)

    def batches(self):
        positions = [(i, self.columns.by_source[name]) for i, name in enumerate(self.header)
                     if name in self.columns.by_source]
        cols: dict = {cid: [] for _, cid in positions}
        numeric: dict = {cid: [] for _, cid in positions if cid in TEXT_COLUMNS}
        lines: list[int] = []
        done = 0
        try:
            for line, row in enumerate(self.sheet.iter_rows(min_row=2, values_only=True), start=2):
                done += 1
                if all(v is None for v in row):
                    continue                      # an empty sheet row is not a record
                for i, cid in positions:
                    v = row[i] if i < len(row) else None
                    if cid in numeric:
                        numeric[cid].append(isinstance(v, (int, float)) and not isinstance(v, bool))
                    cols[cid].append(_cell_text(v))
                lines.append(line)
                if len(lines) >= self.batch_rows:
                    yield self._chunk(cols, numeric, lines, done)
                    cols = {cid: [] for cid in cols}
                    numeric = {cid: [] for cid in numeric}
                    lines = []
            if lines:
                yield self._chunk(cols, numeric, lines, done)
        finally:
            self.book.close()

    @staticmethod
    def _chunk(cols, numeric, lines, done) -> Chunk:
        table = pa.table({cid: pa.array(v, pa.string()) for cid, v in cols.items()})
        as_number = {cid: np.array(v, bool) for cid, v in numeric.items()}
        return Chunk(table, np.array(lines, np.int64), as_number, [], done)


def _cell_text(v):
    if v is None:
        return None
    if isinstance(v, str):
        return v if v.strip() else None
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, dt.datetime):
        return v.date().isoformat() if v.time() == dt.time() else v.isoformat(sep=" ")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, float):
        return _num_text(v)
    return str(v)
