"""Read a screening file in record batches: CSV (UTF-8 or GB18030), .xlsx and Parquet.

Every reader yields :class:`Chunk` objects whose table has one column per recognised input column,
renamed to its id. Identity columns are text. Question columns stay as read (CSV: text, so that no
cell can fail a numeric conversion; codes.py turns answers into integers and validation happens
once, in the scorer), except in plain UTF-8 CSV chunks, which plaincsv.py reads straight into the
same integer codes and hands over as ``answers``, with the text kept for naming problems.
Each row keeps its input line (header = line 1), and rows the reader itself could not take (a CSV
line with the wrong number of cells) come back as ``problems`` so that no row is lost.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import os
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .. import idnumber
from .. import model as m
from ..errors import Code, problem
from . import plaincsv
from .codes import int_coded
from .columns import ID_NUMBER, REGION, Columns, recognise
from .errors import ScreenError

TEXT_COLUMNS = (ID_NUMBER, REGION)     # must arrive as text; a number may have lost digits
# Rows a chunk aims at. Each chunk costs ~18 ms of CPU whatever its size (every stage handles each
# of OUT's 52 columns once per chunk); 393,216 rows: 0.3 s less of a 12 M-row file than 262,144,
# for a peak of about 1.0–1.1 GB instead of 0.8.
DEFAULT_BATCH_ROWS = 393_216


@dataclass
class Chunk:
    table: pa.Table               # columns named by id
    lines: np.ndarray             # int64 input line of each row (header = 1)
    as_number: dict = field(default_factory=dict)   # id → bool mask: cell arrived as a number
    problems: list = field(default_factory=list)    # (line, column, value, Code, kw) for rows not in table
    progress: int = 0             # units done (bytes or rows), for the progress bar
    answers: dict | None = None   # question id → column for the scorer, when the reader makes them (plaincsv)
    present: np.ndarray | None = None   # rows with any cell, when the reader knows (plaincsv)
    raw: object = None            # plaincsv.RawRows: answer text is not in ``table``

    def columns(self, rows, ids) -> dict:
        """The cells of columns ``ids`` in rows ``rows``, as read: id → list."""
        if self.raw is not None:
            return self.raw.columns(rows, ids)
        return self.table.select(list(ids)).take(pa.array(rows)).to_pydict()


class Source:
    """Base: ``columns`` (recognised), ``schema`` (their types, named by id), ``total`` (progress
    units), ``rows_hint``, ``batches()``."""

    columns: Columns
    schema: pa.Schema
    total: int
    kind: str
    rows_hint: int = 0            # about how many rows the file holds

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
    """UTF-8 (with or without BOM) when the start of the file decodes as UTF-8, or its header has
    Chinese in UTF-8, or nearly all of its lines with non-ASCII bytes decode (damaged lines are
    rejected one by one, not read as GB18030, which would garble every Chinese cell and the
    header); else GB18030."""
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    lines = head.split(b"\n")[:-1] or [head]
    if not lines[0].isascii() and _decodes(lines[0], "utf-8"):
        return "utf-8"         # Chinese column names in GB18030 are not valid UTF-8
    wide = [line for line in lines if not line.isascii()]
    undecodable = sum(not _decodes(line, "utf-8") for line in wide)
    # Chinese text in GB18030 almost never decodes as UTF-8: a real GB18030 file fails on nearly
    # every such line, a damaged UTF-8 file on a few.
    return "utf-8" if undecodable * 10 <= len(wide) else "gb18030"


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
        return True
    except UnicodeDecodeError:
        return False


def _header(path, encoding: str) -> tuple[list[str], int]:
    with open(path, "rb") as f:
        raw = f.readline()
    text = raw.decode(encoding, errors="replace").lstrip("\ufeff")
    row = next(csv.reader(io.StringIO(text)), [])
    return [c.strip() for c in row], len(raw)


class CsvSource(Source):
    """CSV in chunks of whole lines (about ``batch_rows`` rows), in bounded memory. A plain UTF-8
    chunk (no quotes, no carriage returns, every line with the header's number of cells) is read by
    the compiled loop of plaincsv.py; any other by pyarrow's multithreaded reader. A chunk holding
    a malformed line is parsed again on one thread, which numbers its lines."""

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
        self.header_bytes = header_bytes
        self.columns = recognise(ins, header, mapping, where=str(path))
        self.total = os.path.getsize(path)
        # Aim at batch_rows rows per chunk from the size of the first data rows.
        with open(path, "rb") as f:
            f.seek(header_bytes)
            sample = f.read(1 << 16)
        per_row = max(16, len(sample) // max(1, sample.count(b"\n"))) if sample else 256
        self.chunk_bytes = int(min(max(per_row * batch_rows, 1 << 12), 1 << 30))
        self.rows_hint = self.total // per_row
        self.threads = threads
        self.schema = pa.schema([pa.field(cid, pa.string()) for cid in self.columns.by_source.values()])
        # pyarrow reads "utf8" natively and any other name through a Python codec (several times
        # slower); a BOM can only sit in the header line, which is not parsed here.
        self._arrow_encoding = "utf8" if self.encoding in ("utf-8", "utf8", "utf-8-sig") else self.encoding

    def _options(self):
        positional = [f"c{i}" for i in range(len(self.header))]
        include = [positional[i] for i, name in enumerate(self.header) if name in self.columns.by_source]
        names = [self.columns.by_source[self.header[int(c[1:])]] for c in include]
        convert = pacsv.ConvertOptions(include_columns=include, column_types={c: pa.string() for c in include},
                                       strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=True)
        return positional, convert, names

    def _without_undecodable(self, data, base: int):
        """The chunk without its lines that are not UTF-8, and for each of those (0-based index in
        the chunk, problem): the line is rejected, naming its first cell that does not decode.
        Lines are cut at line feeds, which is where records end only when no cell is quoted; a
        quoted chunk with such bytes stops the run with the line to look at."""
        raw = bytes(data)
        lines = raw.split(b"\n")
        if b'"' in raw:
            first = next(i for i, line in enumerate(lines) if not _decodes(line, "utf-8"))
            raise ScreenError(problem(Code.FILE_001, where=f"{self.path} 约第{base + first}行",
                                      detail="含有不是 UTF-8 的字节；请用 --encoding 指定文件的编码，或修正该行"))
        kept, dropped = [], []
        for i, line in enumerate(lines):
            if _decodes(line, "utf-8"):
                kept.append(line)
                continue
            cells = line.decode("utf-8", errors="replace").split(",")
            j = next(j for j, c in enumerate(cells) if "\ufffd" in c)
            column = self.header[j] if j < len(self.header) else ""
            value = _clip(idnumber.mask_in_text(cells[j]))
            dropped.append((i, (base + i, column, value, Code.ROW_017, {"encoding": "UTF-8"})))
        return np.frombuffer(b"\n".join(kept), np.uint8), dropped

    def _parse(self, data, threads: bool, positional, convert):
        invalid: list = []
        if not len(data):        # every line of the chunk was taken out before parsing (not UTF-8)
            return pa.table({c: pa.array([], pa.string()) for c in convert.include_columns}), invalid

        def on_invalid(row):
            invalid.append((row.number, row))
            return "skip"
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=positional, use_threads=threads, encoding=self._arrow_encoding,
                                           block_size=max(1 << 16, min(1 << 22, len(data) // 8 + 1))),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
            convert_options=convert)
        return table, invalid

    def _chunks(self):
        """Byte ranges of whole lines after the header, as views of reused buffers (plaincsv.Scratch)."""
        buffers = plaincsv.Scratch()
        # The first chunks are an eighth, a quarter and a half of the others: the stages after
        # the reader start work sooner, instead of waiting for a whole chunk to be read.
        ramp = [max(1 << 12, self.chunk_bytes >> k) for k in (3, 2, 1)]
        with open(self.path, "rb") as f:
            f.seek(self.header_bytes)
            size = ramp.pop(0)
            while True:
                buf = buffers.array((size,), np.uint8)
                got = f.readinto(buf)
                if not got:
                    return
                cut = _after_last_newline(buf[:got])
                if cut == 0 and got == size:     # one line longer than a chunk: read more
                    f.seek(-got, 1)
                    size *= 2
                    continue
                if 0 < cut < got:
                    f.seek(cut - got, 1)
                    got = cut
                yield buf[:got], f.tell()
                del buf
                size = ramp.pop(0) if ramp else self.chunk_bytes

    def batches(self):
        positional, convert, names = self._options()
        plain = None
        if self._arrow_encoding == "utf8" and plaincsv.available():
            plain = plaincsv.Plan(self.header, self.columns.by_source, int_coded(self.ins))
        base = 2                                 # input line of the chunk's first line (header = 1)
        for data, pos in self._chunks():
            parsed = plaincsv.parse(data, plain) if plain is not None else None
            if parsed is not None:
                table, present, raw = parsed
                k = table.num_rows
                answers = {q: table.column(q) for q in self.columns.questions}
                yield Chunk(table, np.arange(base, base + k, dtype=np.int64), {}, [], pos, answers=answers,
                            present=present, raw=raw)
                base += k
                continue
            undecodable: list = []
            if self._arrow_encoding == "utf8" and not plaincsv.is_utf8(data):
                data, undecodable = self._without_undecodable(data, base)
            table, invalid = self._parse(data, self.threads, positional, convert)
            if invalid and (not self.threads or any(num is None for num, _ in invalid)):
                table, invalid = self._parse(data, False, positional, convert)
            k = table.num_rows
            offset = np.arange(k, dtype=np.int64)
            # Lines left out of the table, 0-based in the chunk: those taken out before parsing,
            # then those pyarrow skipped (numbered among the lines it was given).
            taken = np.array([i for i, _ in undecodable], np.int64)
            skipped = _among(np.array([num - 1 for num, _ in invalid], np.int64), taken)
            problems = [p for _, p in undecodable] + [_invalid_problem(base + int(i), row)
                                                      for i, (_, row) in zip(skipped, invalid)]
            bad = np.sort(np.concatenate([taken, skipped]))
            if bad.size:
                offset = _among(offset, bad)
            problems.sort(key=lambda p: p[0])
            lines = base + offset
            base += k + bad.size
            yield Chunk(table.rename_columns(names), lines, {}, problems, pos)


def _among(index: np.ndarray, left_out: np.ndarray) -> np.ndarray:
    """Positions in the whole of items numbered ``index`` among those kept, when the items at the
    sorted positions ``left_out`` were left out: item j comes after every left-out i with
    (left_out_i - i) <= j."""
    return index + np.searchsorted(left_out - np.arange(left_out.size), index, side="right")


def _after_last_newline(data: np.ndarray) -> int:
    """Where to cut a chunk: after its last line feed outside a quoted cell (0 if none). A chunk
    starts outside quotes, so a line feed is inside a quoted cell exactly when an odd number of
    quote characters come before it (a quote inside a quoted cell is written twice). When no line
    feed qualifies (a stray quote in an unquoted cell, or one quoted cell longer than the chunk),
    the last line feed, as a file without quotes is cut."""
    last = _last_newline(data)
    if last == 0 or not _has_quote(data):
        return last
    quotes = np.flatnonzero(data == 34)
    feeds = np.flatnonzero(data == 10)
    outside = feeds[np.searchsorted(quotes, feeds) % 2 == 0]
    return int(outside[-1]) + 1 if outside.size else last


def _has_quote(data: np.ndarray) -> bool:
    count = getattr(idnumber._screen, "count_byte", None)
    return bool(count(data, 34)) if count is not None else bool((data == 34).any())


def _last_newline(data: np.ndarray) -> int:
    """Position after the last line feed in ``data`` (0 if none), looking back 64 kB at a time."""
    end = data.size
    while end > 0:
        start = max(0, end - (1 << 16))
        hit = np.flatnonzero(data[start:end] == 10)
        if hit.size:
            return start + int(hit[-1]) + 1
        end = start
    return 0


def prefetch(batches, depth: int = 1, name: str = "assess-screen-reader"):
    """Iterate ``batches`` on a background thread, ``depth`` items ahead, so that reading the next
    chunk (pyarrow and the compiled checks release the GIL) overlaps scoring this one. Errors are
    re-raised here; closing the generator stops the thread, which closes ``batches`` (so a chain
    of prefetches stops from the end)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work():
        try:
            for item in batches:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((done, None))
        except BaseException as exc:   # handed to the consumer
            q.put((done, exc))
        finally:
            if hasattr(batches, "close"):
                batches.close()

    t = threading.Thread(target=work, name=name, daemon=True)
    t.start()
    try:
        while True:
            item, exc = q.get()
            if item is done:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                pass
            t.join(0.05)


def _invalid_problem(num, row):
    if not row.text.strip():
        return (num, "", "", Code.ROW_016, {})
    # The line as read, to find it by; identity numbers in it masked as in every other reject.
    return (num, "", _clip(idnumber.mask_in_text(row.text)), Code.ROW_015,
            {"actual": row.actual_columns, "expected": row.expected_columns})


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
        self.rows_hint = self.total
        self.batch_rows = batch_rows
        arrow = self.file.schema_arrow
        self.schema = pa.schema([pa.field(cid, pa.string() if cid in self.columns.identity
                                          else arrow.field(src).type)
                                 for src, cid in self.columns.by_source.items()])

    def batches(self):
        done = 0
        cols = list(self.columns.by_source)
        names = [self.columns.by_source[c] for c in cols]
        for batch in self._read(cols, done):
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

    def _read(self, cols, done: int):
        """The file's record batches; a damaged file stops the run with a coded error, not a traceback."""
        batches = self.file.iter_batches(batch_size=self.batch_rows, columns=cols, use_threads=True)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (OSError, pa.ArrowException) as exc:
                raise ScreenError(problem(Code.FILE_001, where=f"{self.path}（第{done + 2}行起的一批）",
                                          detail=f"文件已损坏：{exc}")) from exc
            done += batch.num_rows
            yield batch


def _to_text(col) -> pa.ChunkedArray:
    if pa.types.is_timestamp(col.type):
        return _timestamp_text(col)
    if pa.types.is_floating(col.type):
        return pa.chunked_array([pa.array([None if v is None else _num_text(v) for v in col.to_pylist()],
                                          pa.string())])
    return col.cast(pa.string())


def _timestamp_text(col) -> pa.ChunkedArray:
    """Timestamps as Excel cells read (_cell_text): the date alone at midnight (a birth date that
    pandas stored as a timestamp), else date and time."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    day = pc.cast(col, pa.date32(), safe=False)
    midnight = pc.equal(pc.cast(day, col.type), col)
    full = pc.strftime(col, format="%Y-%m-%d %H:%M:%S")
    return pa.chunked_array([pc.if_else(midnight, pc.cast(day, pa.string()), full)])


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
        self.rows_hint = self.total
        self.batch_rows = min(batch_rows, 65_536)
        self.schema = pa.schema([pa.field(cid, pa.string()) for cid in self.columns.by_source.values()])

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
