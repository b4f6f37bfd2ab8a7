"""Synthetic GB/T 42195 screening files for demos, tests and benchmarks (``assess demo-data``).

Nothing here is real: names are drawn from common characters, identity numbers are built from a
handful of county codes, a random birth date (60–100 years before the assessment date) and a
random sequence, with a correct GB 11643 check character. Answers follow a plausible mix — most
people at level 0–1, some at 2–4 — with items correlated through one latent deficit split between
physical and cognitive items. A chosen share of rows is made bad, one kind of fault each, covering
every check ``assess screen`` makes; :func:`generate` also returns which row got which fault.
"""
from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from . import idnumber
from .score import resolve

REGIONS = ("110101", "110105", "110108", "120101", "130102", "310104", "310115", "320102", "330106",
           "370102", "410105", "420106", "440106", "440305", "510107", "610113")
SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈")
GIVEN = list("秀英华玉兰桂珍凤芳淑云国明建军志强文德福春海金平永成红丽敏静立新宝林荣生义")
DIAGNOSES = (("I10", .42), ("E11", .18), ("I25", .12), ("I63", .08), ("J44", .05), ("M81", .08),
             ("H25", .10), ("G20", .02), ("N18", .02))
LEVEL_MIX = (0.30, 0.45, 0.13, 0.07, 0.05)          # share of people at initial levels 0–4
# Kinds of bad row. "under_60" is a warning (the row is still scored); "id_as_number" only in .xlsx.
BAD_KINDS = ("bad_code", "missing_item", "non_numeric", "id_malformed", "id_check", "id_legacy",
             "id_date", "birth_mismatch", "sex_mismatch", "duplicate", "region_bad", "inconsistent",
             "bad_icd", "empty_row", "under_60")
XLSX_ONLY = ("id_as_number",)
XLSX_MAX_ROWS = 1_048_575


def _columns(ins, header: str) -> list[tuple[str, str]]:
    """(output column name, id) for every column written."""
    ident = [("姓名", "A.2.1"), ("性别", "A.2.2"), ("出生日期", "A.2.3"), ("公民身份号码", "A.2.8"),
             ("行政区划代码", "region")]
    qs = [(q.label.zh if header == "labels" else q.id, q.id) for q in (*ins.items, *ins.fields)]
    return ident + qs + [("备注", "note")]


def generate(instrument="gbt42195-2022", rows: int = 1000, *, seed: int = 0, bad_share: float = 0.0,
             as_of: dt.date | None = None, header: str = "labels", kinds=BAD_KINDS, start: int = 0,
             used: np.ndarray | None = None):
    """One chunk of a screening file: (pyarrow Table of text columns, array of fault kind per row,
    "" for a good row). ``start`` is the index of the first row in the file (for the seed stream);
    ``used`` (from :func:`new_sequence_counts`) carries the sequence codes handed out by earlier
    chunks of the same file, so that no two people share an identity number."""
    ins = resolve(instrument)
    if ins.id != "gbt42195-2022":   # the level mix, coma codes, diagnoses and events below are its own
        raise ValueError(f"demo-data writes gbt42195-2022 screening files only, not {ins.id}: the answers it draws "
                         "follow that standard's levels, coma codes, diagnoses and risk events")
    as_of = as_of or dt.date.today()
    rng = np.random.default_rng([seed, start])
    n = rows
    items = list(ins.items)
    maxima = np.array([i.max_points for i in items], np.int64)
    cognitive = np.array([i.domain in ("B.3",) or i.id in ("B.4.3", "B.4.5") for i in items])

    # Target total from the level mix, deficit spread over items by a physical/cognitive split.
    bands = sorted(ins.bands, key=lambda b: b.level)
    level = rng.choice(len(bands), n, p=LEVEL_MIX)
    lo = np.array([b.min for b in bands])[level]
    hi = np.array([b.max for b in bands])[level]
    total = rng.integers(lo, hi + 1)
    deficit = maxima.sum() - total
    p_cog = rng.beta(2, 3, n)
    w = maxima * np.where(cognitive, p_cog[:, None], 1 - p_cog[:, None]) * rng.gamma(2.0, 1.0, (n, len(items)))
    loss = np.floor(deficit[:, None] * w / w.sum(1, keepdims=True) + rng.random((n, len(items))))
    points = np.clip(maxima - loss, 0, maxima).astype(np.int64)

    cols: dict[str, np.ndarray] = {}
    for j, it in enumerate(items):
        cols[it.id] = points[:, j].astype(str).astype(object)
    # B.3.9 sub-codes: coma only for a few of the most impaired, recorded in A.5.11 too.
    b39 = points[:, [i.id for i in items].index("B.3.9")]
    coma = (b39 == 0) & (rng.random(n) < 0.25)
    c39 = cols["B.3.9"]
    c39[b39 == 1] = rng.choice(["1", "1a", "1b"], int((b39 == 1).sum()))
    c39[b39 == 0] = "0a"
    c39[coma] = "0b"
    cols["A.5.11"] = np.where(coma, "1", "0").astype(object)
    cog_loss = (loss * cognitive).sum(1) / max(1, (maxima * cognitive).sum())
    diag = [np.where(rng.random(n) < p, code, "") for code, p in DIAGNOSES]
    diag.append(np.where(rng.random(n) < np.clip(cog_loss * 0.9, 0, 0.8), "F03", ""))
    cols["A.4.1"] = np.array([";".join(c for c in parts if c) for parts in zip(*diag)], object)
    phys_loss = (loss * ~cognitive).sum(1) / (maxima * ~cognitive).sum()
    for k, base in zip(range(1, 6), (0.10, 0.02, 0.02, 0.005, 0.02)):
        lam = base + (phys_loss * 0.5 if k == 1 else 0) + (cog_loss * 0.2 if k == 2 else 0)
        cols[f"A.2.14.{k}"] = np.minimum(rng.poisson(np.broadcast_to(lam, n)), 3).astype(str).astype(object)

    # Identity: region + birth date + sequence (odd = male) + MOD 11-2 check character.
    male = rng.random(n) < 0.46
    age_days = (rng.gamma(2.2, 6.0, n) * 365.25).astype(np.int64) + 60 * 366
    over = age_days > 100 * 365      # the few beyond 100 are spread over 60–100, not piled on one day
    age_days[over] = 60 * 366 + age_days[over] % (100 * 365 - 60 * 366)
    birth = np.datetime64(as_of, "D") - age_days
    region_idx = rng.integers(0, len(REGIONS), n)
    region = np.array(REGIONS)[region_idx]
    seq = _sequence(region_idx, age_days, male, used if used is not None else new_sequence_counts())
    ids = _id_numbers(region, birth, seq)
    cols["A.2.8"] = ids.astype(object)
    cols["region"] = region.astype(object)
    cols["A.2.3"] = birth.astype(str).astype(object)
    cols["A.2.2"] = np.where(male, "男", "女").astype(object)
    cols["A.2.1"] = np.char.add(np.array(SURNAMES)[rng.integers(0, len(SURNAMES), n)],
                                np.char.add(np.array(GIVEN)[rng.integers(0, len(GIVEN), n)],
                                            np.where(rng.random(n) < 0.6,
                                                     np.array(GIVEN)[rng.integers(0, len(GIVEN), n)], ""))
                                ).astype(object)
    cols["note"] = np.full(n, "", object)

    kind = np.full(n, "", object)
    if bad_share > 0 and kinds:
        bad = np.flatnonzero(rng.random(n) < bad_share)
        kind[bad] = rng.choice(list(kinds), bad.size)
        _spoil(cols, kind, rng, ins, as_of)

    table = pa.table({name: pa.array(np.where(cols[cid] == "", None, cols[cid]).tolist()
                                     if cid != "note" else cols[cid].tolist(), pa.string())
                      for name, cid in _columns(ins, header)})
    return table, kind


def new_sequence_counts() -> np.ndarray:
    """Sequence codes handed out so far, per county, age in days and sex."""
    return np.zeros((len(REGIONS), 100 * 365 + 1, 2), np.int32)


def _sequence(region_idx: np.ndarray, age_days: np.ndarray, male: np.ndarray, used: np.ndarray) -> np.ndarray:
    """顺序码 as a registry assigns it: distinct among people of one county, birth date and sex (odd
    for men, even for women), so that a large file holds no accidental duplicate (random codes
    would give 12 M people some 600,000 of them). The start differs per group, to look random."""
    group = np.ravel_multi_index((region_idx, age_days, male.astype(np.int64)), used.shape)
    flat = used.reshape(-1)
    order = np.argsort(group, kind="stable")
    g = group[order]
    first = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    rank = np.arange(g.size) - np.repeat(first, np.diff(np.r_[first, g.size]))
    k = np.empty(group.size, np.int64)
    k[order] = flat[g] + rank
    np.add.at(flat, group, 1)
    if k.size and k.max() >= 500:   # pragma: no cover - needs hundreds of people born on one day in one county
        raise ValueError("more than 500 people of one sex born on one day in one county")
    return ((k + group * 7919) % 500) * 2 + male


def _id_numbers(region: np.ndarray, birth: np.ndarray, seq: np.ndarray) -> np.ndarray:

    body = np.char.add(np.char.add(region.astype("U6"), np.char.replace(birth.astype("U10"), "-", "")),
                       np.char.zfill(seq.astype("U3"), 3))
    digits = body.astype("S17").view(np.uint8).reshape(-1, 17).astype(np.int64) - 48
    check = np.array(list(idnumber.CHECK_CHARS))[(digits * idnumber.WEIGHTS).sum(1) % 11]
    return np.char.add(body, check)


def _spoil(cols, kind, rng, ins, as_of) -> None:
    item_ids = [i.id for i in ins.items if i.id != "B.3.9"]
    for k in sorted(set(kind) - {""}):    # sorted: the draws below follow a fixed order for a seed
        rows = np.flatnonzero(kind == k)
        m = rows.size
        pick = rng.choice(item_ids, m)
        if k == "bad_code":
            for r, q in zip(rows, pick):
                cols[q][r] = "7"
        elif k == "missing_item":
            for r, q in zip(rows, pick):
                cols[q][r] = ""
        elif k == "non_numeric":
            for r, q, v in zip(rows, pick, rng.choice(["四", "良好", "abc", "4分"], m)):
                cols[q][r] = v
        elif k == "id_malformed":
            cols["A.2.8"][rows] = [s[:5] + s[6:] for s in cols["A.2.8"][rows]]
        elif k == "id_check":
            cols["A.2.8"][rows] = [s[:17] + idnumber.CHECK_CHARS[(idnumber.CHECK_CHARS.index(s[17]) + 1) % 11]
                                   for s in cols["A.2.8"][rows]]
        elif k == "id_legacy":
            cols["A.2.8"][rows] = [s[:6] + s[8:14] + s[14:17] for s in cols["A.2.8"][rows]]
        elif k == "id_date":
            cols["A.2.8"][rows] = [_with_check(s[:10] + "13" + s[12:17]) for s in cols["A.2.8"][rows]]
        elif k == "birth_mismatch":
            cols["A.2.3"][rows] = [str(np.datetime64(d) + 1) for d in cols["A.2.3"][rows]]
        elif k == "sex_mismatch":
            cols["A.2.2"][rows] = np.where(cols["A.2.2"][rows] == "男", "女", "男")
        elif k == "duplicate":
            src = np.flatnonzero(kind == "")
            if src.size == 0:
                kind[rows] = ""
                continue
            other = rng.choice(src, m)
            early = other < rows
            kind[rows[~early]] = ""       # only a later copy of an earlier person is a duplicate
            for c in ("A.2.8", "A.2.1", "A.2.2", "A.2.3", "region"):
                cols[c][rows[early]] = cols[c][other[early]]
        elif k == "region_bad":
            cols["region"][rows] = [s[:5] for s in cols["region"][rows]]
        elif k == "inconsistent":
            cols["A.5.11"][rows] = "1"
            cols["B.3.9"][rows] = "2"
        elif k == "bad_icd":
            cols["A.4.1"][rows] = "痴呆"
        elif k == "empty_row":
            for c in cols:
                cols[c][rows] = ""
        elif k == "under_60":
            young = np.datetime64(as_of, "D") - rng.integers(50 * 365, 59 * 365, m)
            seq = np.array([int(s[14:17]) for s in cols["A.2.8"][rows]])
            cols["A.2.8"][rows] = _id_numbers(np.array([s[:6] for s in cols["A.2.8"][rows]]), young, seq)
            cols["A.2.3"][rows] = young.astype(str)
        elif k == "id_as_number":
            pass   # written as a numeric cell by write_xlsx


def _with_check(body17: str) -> str:
    return body17 + idnumber.check_char(body17)


def write(path, instrument="gbt42195-2022", rows: int = 1000, *, seed: int = 0, bad_share: float = 0.0,
          as_of: dt.date | None = None, header: str = "labels", encoding: str = "utf-8",
          chunk_rows: int = 1_000_000) -> np.ndarray:
    """Write a demo file (.csv, .xlsx or .parquet by extension); returns the fault kind of each row."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx", ".parquet"):
        raise ValueError(f"{path}: write .csv, .xlsx or .parquet")
    if suffix == ".xlsx" and rows > XLSX_MAX_ROWS:
        raise ValueError(f"{path}: {rows} rows do not fit one .xlsx sheet ({XLSX_MAX_ROWS:,} data rows); "
                         "write .csv or .parquet")
    # A sheet row with no cell at all is not a record (Excel keeps formatted blank rows), so .xlsx
    # files get no empty_row fault; they get an identity number stored as a number instead.
    kinds = tuple(k for k in BAD_KINDS if k != "empty_row") + XLSX_ONLY if suffix == ".xlsx" else BAD_KINDS
    all_kinds = []
    writer = None
    tmp = path.with_name(f".{path.name}.partial")
    try:
        if suffix == ".xlsx":
            table, kind = generate(instrument, rows, seed=seed, bad_share=bad_share, as_of=as_of,
                                   header=header, kinds=kinds, used=new_sequence_counts())
            _write_xlsx(tmp, table, kind)
            all_kinds.append(kind)
        else:
            out = open(tmp, "wb")
            used = new_sequence_counts()
            try:
                for start in range(0, max(rows, 1), chunk_rows):
                    k = min(chunk_rows, rows - start)
                    if k <= 0:
                        break
                    table, kind = generate(instrument, k, seed=seed, bad_share=bad_share, as_of=as_of,
                                           header=header, kinds=kinds, start=start, used=used)
                    all_kinds.append(kind)
                    if suffix == ".parquet":
                        if writer is None:
                            writer = pq.ParquetWriter(out, table.schema, compression="zstd")
                        writer.write_table(table)
                    else:
                        buf = io.BytesIO()
                        pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=start == 0,
                                                                       quoting_style="none"))
                        data = buf.getvalue()
                        if encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
                            data = data.decode("utf-8").encode(encoding)
                        out.write(data)
                if writer is not None:
                    writer.close()
            finally:
                out.close()
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return np.concatenate(all_kinds) if all_kinds else np.zeros(0, object)


def _write_xlsx(path, table: pa.Table, kind: np.ndarray) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("评估数据")
    names = table.column_names
    ws.append(names)
    text_cols = {names.index(c) for c in ("公民身份号码", "行政区划代码", "出生日期") if c in names}
    id_col = names.index("公民身份号码")
    data = [table.column(c).to_pylist() for c in names]
    for r in range(table.num_rows):
        row = []
        for j in range(len(names)):
            v = data[j][r]
            if j == id_col and kind[r] == "id_as_number" and v and v[:17].isdigit():
                row.append(float(v[:17] + ("0" if v[17] == "X" else v[17])))   # what Excel does to it
            elif j in text_cols and v is not None:
                cell = WriteOnlyCell(ws, value=v)
                cell.number_format = "@"
                row.append(cell)
            elif v is not None and v.isdigit() and j not in text_cols:
                row.append(int(v))          # answers typed as numbers, as people do
            else:
                row.append(v)
        ws.append(row)
    wb.save(path)
