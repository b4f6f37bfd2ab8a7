"""Write OUT and REJECTS aside (a hidden temporary name in the same folder) and rename at the end,
so an interrupted run never leaves a half-written file under the name asked for."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import Code, problem
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


class _Aside:
    def __init__(self, path):
        self.path = Path(path)
        self.tmp = _aside(self.path)

    def abort(self) -> None:
        self._close()
        self.tmp.unlink(missing_ok=True)

    def commit(self) -> None:
        self._close()
        os.replace(self.tmp, self.path)

    def _close(self) -> None:  # pragma: no cover - overridden
        pass


class TableWriter(_Aside):
    """OUT: Parquet (types kept: text stays text) or CSV (UTF-8)."""

    def __init__(self, path):
        super().__init__(check_out_path(path))
        self.csv = self.path.suffix.lower() == ".csv"
        self._writer = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if self.csv:
            table = pa.table({name: _plain(col) for name, col in zip(table.column_names, table.columns)})
        if self._writer is None:
            if self.csv:
                self._writer = pacsv.CSVWriter(str(self.tmp), table.schema)
            else:
                self._writer = pq.ParquetWriter(str(self.tmp), table.schema, compression="zstd")
        self._writer.write_table(table)
        self.rows += table.num_rows

    def finish_empty(self, schema: pa.Schema) -> None:
        if self._writer is None:
            self.write(schema.empty_table())

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _plain(col):
    if pa.types.is_dictionary(col.type):
        return col.cast(col.type.value_type)
    return col


class RejectsWriter(_Aside):
    """REJECTS: one line per problem (CSV in UTF-8 with a BOM so that Excel shows the Chinese), or Parquet."""

    def __init__(self, path):
        super().__init__(check_out_path(path, "REJECTS"))
        self.parquet = self.path.suffix.lower() == ".parquet"
        self.count = 0
        if self.parquet:
            self._writer = pq.ParquetWriter(str(self.tmp), _REJECT_SCHEMA)
            self._file = None
        else:
            self._file = open(self.tmp, "w", encoding="utf-8-sig", newline="")
            self._csv = csv.writer(self._file)
            self._csv.writerow(REJECT_COLUMNS)
            self._writer = None

    def write(self, records: list[dict]) -> None:
        if not records:
            return
        records = sorted(records, key=lambda r: r["line"])
        if self.parquet:
            self._writer.write_table(pa.Table.from_pylist(records, schema=_REJECT_SCHEMA))
        else:
            self._csv.writerows([r[c] for c in REJECT_COLUMNS] for r in records)
        self.count += len(records)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._file is not None:
            self._file.close()
            self._file = None


_REJECT_SCHEMA = pa.schema([("line", pa.int64())] + [(c, pa.string()) for c in REJECT_COLUMNS[1:]])
