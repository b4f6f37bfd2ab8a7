"""Helpers for the store tests: synthetic identity numbers, answers, screening outputs."""
from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import assess
from assess import batch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gbt42195-answers.json"
ASSESSED = dt.date(2025, 3, 1)
CHECK = "10X98765432"
W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]

POLICY = """
policy: test
version: "1"
departments: {nhsa: 医保, mca: 民政, nhc: 卫健, cdpf: 残联}
crosswalks:
  - {id: to_demo, from: gbt42195-2022, to: demo-scale, levels: {0: 0, 1: 1, 2: 1, 3: 2, 4: 2}, source: synthetic test}
purposes:
  nhsa:
    ltc: {label: 长护险, accept: [{instrument: gbt42195-2022, versions: ["2022"], issuers: [mca, nhsa],
                                   max_age_days: 365, min_assessors: 2}]}
    old_version: {label: t, accept: [{instrument: gbt42195-2022, versions: ["1999"], issuers: [mca],
                                      max_age_days: 365, min_assessors: 1}]}
    only_nhc: {label: t, accept: [{instrument: gbt42195-2022, issuers: [nhc], max_age_days: 365, min_assessors: 1}]}
    severe: {label: t, accept: [{instrument: gbt42195-2022, issuers: [mca], levels: [4], max_age_days: 365,
                                 min_assessors: 1}]}
    walk: {label: t, accept: [{instrument: gbt42195-2022, issuers: [mca], max_age_days: 365, min_assessors: 1,
                               crosswalk: to_demo}]}
  mca:
    subsidy: {label: 护理补贴, accept: [{instrument: gbt42195-2022, issuers: [mca, nhsa], max_age_days: 180,
                                      min_assessors: 1}]}
"""


def make_id(region="110105", birth=dt.date(1940, 5, 17), seq=21) -> str:
    body = f"{region}{birth:%Y%m%d}{seq:03d}"
    return body + CHECK[sum(int(c) * w for c, w in zip(body, W)) % 11]


def example_answers() -> dict:
    return json.loads(EXAMPLE.read_text(encoding="utf-8"))


def add(store, answers=None, *, id_number=None, assessed_on=ASSESSED, assessors=("张三", "李四"), reason="first",
        settings=None):
    answers = answers or example_answers()
    res = assess.score_one("gbt42195-2022", answers, settings=settings)
    return store.add(res, answers, id_number=id_number or make_id(), assessed_on=assessed_on,
                     assessors=list(assessors), organisation="测试评估机构", reason=reason, region="110105")


def screening_frame(n: int, seed: int = 0, bad_every: int = 0) -> pd.DataFrame:
    """A synthetic screening output with exactly the columns `assess screen` writes."""
    rng = random.Random(seed)
    ins = assess.load_instrument("gbt42195-2022")
    rows = []
    for i in range(n):
        r = {"A.2.8": make_id("330102", dt.date(1930, 1, 1) + dt.timedelta(days=rng.randrange(10000)), i % 1000),
             "A.2.1": f"测试{i}", "region": "330102", "source_line": i + 2}
        for q in ins.items:
            r[q.id] = rng.choice(q.options).raw
        r["A.5.11"] = 0
        if r["B.3.9"] == "0b":
            r["B.3.9"] = 2
        r["A.4.1"] = rng.choice(["", "I10", "I10;F03", "E11; F20"])
        for k in range(1, 6):
            r[f"A.2.14.{k}"] = rng.choice([0, 0, 0, 1, 2])
        if bad_every and i % bad_every == 1:
            r["B.1.1"] = None                       # → incomplete, not stored
        rows.append(r)
    df = pd.DataFrame(rows)
    df["B.3.9"] = df["B.3.9"].astype(str)
    df["B.1.1"] = df["B.1.1"].astype("Int64")
    # The reference backend, explicitly: these fixtures must not depend on the compiled kernel's state.
    out = batch.score_table(ins, df.drop(columns=["A.2.8", "A.2.1", "region", "source_line"]), None)
    return pd.concat([df, out], axis=1)


def write_parquet(df: pd.DataFrame, path) -> Path:
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    return Path(path)
