"""Write OUT and REJECTS aside (a hidden temporary name in the same folder) and rename at the end,
so an interrupted run never leaves a half-written file under the name asked for."""
from __future__ import annotations

import csv
import glob
import os
import queue
import threading
from operator import itemgetter
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import Code, problem
from .columns import ID_NUMBER, NAME
from .errors import ScreenError

REJECT_COLUMNS = ("line", "column", "field", "value", "code", "severity", "message")
OUT_FORMATS = (".parquet", ".csv")


def _aside(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def check_out_path(path, what: str = "OUT") -> Path:
    path = Path(path)
    if path.suffix.lower() not in OUT_FORMATS:
        raise ScreenError(problem(Code.FILE_004, where=f"{what} {path}",
                                  detail=f"不支持的扩展名 {path.suffix or '（无）'}"))
    if not path.parent.is_dir():
        raise ScreenError(problem(Code.FILE_004, where=f"{what} {path}", detail="目录不存在"))
    return path


def check_report_path(path) -> Path:
    """The HTML report's path, checked before any row is read (it is written last)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ScreenError(problem(Code.FILE_004, where=f"REPORT {path}", detail="目录不存在"))
    return path


def check_distinct(input_path, **outputs) -> None:
    """Refuse an output that is the input or another output: OUT written over the input would
    destroy it, and two outputs under one name would share a temporary file and lose rows."""
    named = [("INPUT", Path(input_path))] + [(what.upper(), Path(p)) for what, p in outputs.items() if p is not None]
    for i, (what, path) in enumerate(named):
        for earlier, other in named[:i]:
            if _same_file(path, other):
                raise ScreenError(problem(Code.FILE_004, where=f"{what} {path}", detail=f"与 {earlier} 是同一个文件"))


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)     # hard links, or one name reached through another folder
    except OSError:                      # one of them does not exist yet
        return False


def _remove_stale(path: Path) -> None:
    """Remove what a killed earlier run left aside for ``path`` (the process named in its
    temporary name is gone), so that kills do not pile up hidden files next to OUT."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
        pid = tmp.name[len(path.name) + 2:-len(".partial")]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            tmp.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:      # another user's process
        return True
    return True


class _Aside:
    def __init__(self, path):
        self.path = Path(path)
        self.tmp = _aside(self.path)
        _remove_stale(self.path)

    def abort(self) -> None:
        self._close()
        self.tmp.unlink(missing_ok=True)

    def commit(self) -> None:
        self._close()
        os.replace(self.tmp, self.path)

    def _close(self) -> None:  # pragma: no cover - overridden
        pass


class TableWriter(_Aside):
    """OUT: Parquet (types kept: text stays text) or CSV (UTF-8).

    Tables are filtered and written on a background thread (pyarrow releases the GIL), so writing
    one batch overlaps scoring the next; at most ``depth`` batches wait. Parquet settings favour
    speed: LZ4 (none for id numbers and names), dictionaries only for columns with few distinct
    values, no statistics, and integers byte-stream-split (where this pyarrow can), which LZ4 then
    packs nearly as well as zstd at a third of the cost.
    """

    def __init__(self, path, depth: int = 2, not_null: frozenset = frozenset()):
        super().__init__(check_out_path(path))
        self.csv = self.path.suffix.lower() == ".csv"
        # Columns declared required in Parquet: no definition levels to work out and write, about
        # a third of a small integer column's cost. A null in one is refused by pyarrow (an error,
        # never a wrong file), so only columns that cannot hold one in a scored row are named.
        self.not_null = not_null
        self._schema = None
        self._writer = None
        self.rows = 0
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error = None
        self._thread = None

    def write(self, table: pa.Table, keep=None) -> None:
        """Write ``table`` (only the rows where the boolean array ``keep`` is true, if given)."""
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="assess-screen-writer", daemon=True)
            self._thread.start()
        self._queue.put((table, keep))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                try:
                    self._write(*item)
                except BaseException as exc:  # handed to the caller at its next write or at close
                    self._error = exc

    def _write(self, table: pa.Table, keep) -> None:
        if keep is not None:
            table = table.filter(keep)
        if self.csv:
            table = pa.table({name: _plain(col) for name, col in zip(table.column_names, table.columns)})
        elif self.not_null:
            if self._schema is None:
                self._schema = pa.schema([f.with_nullable(f.nullable and (f.name not in self.not_null
                                                                          or pa.types.is_null(f.type)))
                                          for f in table.schema])     # a null-typed column holds only nulls
            table = table.cast(self._schema)
        if self._writer is None:
            self._writer = pacsv.CSVWriter(str(self.tmp), table.schema) if self.csv else _parquet_writer(self.tmp, table.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def finish_empty(self, schema: pa.Schema) -> None:
        self._join()
        if self._writer is None:
            self._write(schema.empty_table(), None)

    def _join(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error

    def commit(self) -> None:
        self._join()
        super().commit()

    def abort(self) -> None:
        try:
            self._join()
        except BaseException:
            pass
        super().abort()

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


_LOW_CARDINALITY = ("A.2.2", "A.2.3", "region", "B.3.9", "A.4.1", "status", "error_field")
# Written uncompressed: a different text in nearly every row, which LZ4 only halves (12 M rows:
# id numbers 262 → 146 MB, names 140 → 72 MB) at 0.45 and 0.32 s of CPU, a sixth of the writer's
# time and 5-6 % of a whole CSV screening, for 184 MB (36 %) more OUT.
_UNCOMPRESSED = (ID_NUMBER, NAME)


def _parquet_writer(path, schema: pa.Schema) -> pq.ParquetWriter:
    names = set(schema.names)
    dictionary = [n for n in _LOW_CARDINALITY if n in names]
    extra = {}
    if int(pa.__version__.split(".")[0]) >= 17:    # byte stream split of integers: Arrow 17 on
        extra["column_encoding"] = {f.name: "BYTE_STREAM_SPLIT" for f in schema
                                    if pa.types.is_integer(f.type) and f.name not in dictionary}
    # A dict names top-level columns; a nested column's leaves would get no codec, so none is nested in OUT.
    compression = "lz4" if any(pa.types.is_nested(f.type) for f in schema) else \
        {n: "none" if n in _UNCOMPRESSED else "lz4" for n in schema.names}
    # write_batch_size: values encoded per internal step (default 1,024); 64 k is a few % cheaper.
    return pq.ParquetWriter(str(path), schema, compression=compression, use_dictionary=dictionary,
                            write_statistics=False, write_batch_size=65_536, **extra)


def _plain(col):
    if pa.types.is_dictionary(col.type):
        return col.cast(col.type.value_type)
    return col


class RejectsWriter(_Aside):
    """REJECTS: one line per problem (CSV in UTF-8 with a BOM so that Excel shows the Chinese), or Parquet.

    The file is opened at the first write (or at commit, for a run without a problem), inside the
    run's guard that removes it on an error or a stop: opened when made, it could be left behind by
    a stop that came before the run reached that guard."""

    def __init__(self, path):
        super().__init__(check_out_path(path, "REJECTS"))
        self.parquet = self.path.suffix.lower() == ".parquet"
        self.count = 0
        self._writer = self._file = None

    def _open(self) -> None:
        if self.parquet:
            self._writer = pq.ParquetWriter(str(self.tmp), _REJECT_SCHEMA)
        else:
            # The BOM written by hand: "utf-8-sig" encodes every line through its Python-level
            # incremental encoder, "utf-8" through the C one (the same bytes).
            self._file = open(self.tmp, "w", encoding="utf-8", newline="")
            self._file.write("\ufeff")
            self._csv = csv.writer(self._file)
            self._csv.writerow(REJECT_COLUMNS)

    def write(self, records: list[dict]) -> None:
        if not records:
            return
        if self._writer is None and self._file is None:
            self._open()
        records = sorted(records, key=_BY_LINE)
        if self.parquet:
            self._writer.write_table(pa.Table.from_pylist(records, schema=_REJECT_SCHEMA))
        else:
            self._csv.writerows(map(_REJECT_CELLS, records))
        self.count += len(records)

    def commit(self) -> None:
        if self._writer is None and self._file is None:
            self._open()                 # a run without problems still leaves REJECTS, header only
        super().commit()

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._file is not None:
            self._file.close()
            self._file = None


_BY_LINE = itemgetter("line")
_REJECT_CELLS = itemgetter(*REJECT_COLUMNS)     # a record's cells in column order, as a tuple (C-level)
_REJECT_SCHEMA = pa.schema([("line", pa.int64())] + [(c, pa.string()) for c in REJECT_COLUMNS[1:]])
