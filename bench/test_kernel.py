"""Scoring throughput (issue 3): the compiled kernel against the reference scorer and a plain
pandas implementation of the same instrument, all measured in the same run, at 1 k, 100 k and 1 M
rows of GB/T 42195-2022 with every rule input present.

    .venv/bin/python -m pytest bench/test_kernel.py --benchmark-only -q

Every measured call goes through the public ``assess.score`` (Arrow table in, Arrow table out),
so the figures include input mapping and output building, not the bare loop. The summary at the
end prints rows/s and the ratios the issue sets targets for: kernel on one core ≥ 30 M rows/s,
two threads ≥ 1.7× one, ≥ 10× pandas, ≥ 200× the reference. Each result is checked after timing.
"""
from __future__ import annotations

import importlib
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import assess
from assess import batch

kernel = pytest.importorskip("assess._kernel", reason="compiled kernel not built")

SIZES = [1_000, 100_000, 1_000_000]
GBT = assess.load_instrument("gbt42195-2022")
RESULTS: dict = {}


def make_table(rows: int, seed: int = 7) -> pa.Table:
    """A realistic screening batch: correlated answers, coma rare and consistent, diagnoses as text."""
    rng = np.random.default_rng(seed)
    ability = rng.beta(5, 1.5, rows)   # most people able, a tail of frail ones
    cols = {}
    for item in GBT.items:
        codes = np.array(sorted({o.points for o in item.options}))
        noisy = np.clip(ability + rng.normal(0, 0.12, rows), 0, 1)
        cols[item.id] = pa.array(codes[np.minimum((noisy * len(codes)).astype(int), len(codes) - 1)].astype(np.int8))
    coma = (cols["B.3.9"].to_numpy() == 0) & (rng.random(rows) < 0.5)
    cols["A.5.11"] = pa.array(coma.astype(np.int8))
    for k in range(1, 6):
        cols[f"A.2.14.{k}"] = pa.array(rng.choice([0, 1, 2, 3], rows, p=[0.9, 0.07, 0.02, 0.01]).astype(np.int8))
    pool = np.array(["", "", "", "", "I10", "E11;I10", "F03", "I63;F01.1", "G20", "F32"])
    cols["A.4.1"] = pa.array(pool[rng.integers(0, len(pool), rows)])
    return pa.table(cols)


TABLES = {n: make_table(n) for n in SIZES}


def pandas_score(df: pd.DataFrame) -> pd.Series:
    """The same instrument the way a data team would write it: map, sum, cut, rules."""
    points = {i.id: df[i.id].map({o.raw: o.points for o in i.options if isinstance(o.raw, int)})
              for i in GBT.items}
    total = sum(points[i] for i in points)
    bands = sorted(GBT.bands, key=lambda b: b.min)
    initial = pd.cut(total, bins=[bands[0].min - 1] + [b.max for b in bands],
                     labels=[b.level for b in bands]).astype(float)
    r1 = df["A.5.11"] == 1
    r2 = df["A.4.1"].str.contains(r"(?:^|[;,\s])[Ff][0-9]{2}", regex=True)
    r3 = df[[f"A.2.14.{k}" for k in range(1, 6)]].sum(axis=1) >= 2
    return pd.Series(np.where(r1, 4, np.minimum(GBT.max_level, initial + (r2 | r3))), index=df.index)


def _record(benchmark, name, rows):
    RESULTS[(name, rows)] = rows / benchmark.stats.stats.median


@pytest.mark.parametrize("rows", SIZES)
@pytest.mark.parametrize("threads", [1, 2])
def test_kernel(benchmark, rows, threads):
    table = TABLES[rows]
    out = benchmark(assess.score, GBT, table, threads=threads)
    _record(benchmark, f"kernel, {threads} thread{'s' if threads > 1 else ''}", rows)
    assert out.num_rows == rows and out.column("status").to_pylist().count("ok") == rows


@pytest.mark.parametrize("rows", SIZES)
def test_reference(benchmark, rows):
    table = TABLES[rows]
    raw = benchmark.pedantic(batch.score_raw, (GBT, table, None), rounds=1 if rows > 1000 else 3, iterations=1)
    _record(benchmark, "reference", rows)
    assert np.array_equal(raw["level"], batch.score_raw(GBT, table, kernel)["level"])


@pytest.mark.parametrize("rows", SIZES)
def test_pandas(benchmark, rows):
    df = TABLES[rows].to_pandas()
    level = benchmark.pedantic(pandas_score, (df,), rounds=3 if rows > 1000 else 10, iterations=1)
    _record(benchmark, "pandas", rows)
    expected = batch.score_raw(GBT, TABLES[rows], kernel)["level"]
    assert np.array_equal(level.to_numpy().astype(int), expected)


def pytest_terminal_summary_lines() -> list[str]:
    lines = ["", "scoring throughput, GB/T 42195-2022 with all rules (median rows/s; ratios from this run)"]
    names = ["kernel, 1 thread", "kernel, 2 threads", "pandas", "reference"]
    lines.append(f"{'rows':>10} " + " ".join(f"{n:>18}" for n in names)
                 + f" {'2T/1T':>7} {'K/pandas':>9} {'K/ref':>8}")
    for rows in SIZES:
        rate = {n: RESULTS.get((n, rows)) for n in names}
        cells = " ".join(f"{rate[n] / 1e6:>16.2f} M" if rate[n] else f"{'-':>18}" for n in names)
        k1, k2, pd_, ref = (rate[n] for n in names)
        two = f"{k2 / k1:>7.2f}" if k1 and k2 else f"{'-':>7}"
        vs_pd = f"{max(k1 or 0, k2 or 0) / pd_:>9.1f}" if pd_ and k1 else f"{'-':>9}"
        vs_ref = f"{(k1 or 0) / ref:>8.0f}" if ref and k1 else f"{'-':>8}"
        lines.append(f"{rows:>10} {cells} {two} {vs_pd} {vs_ref}")
    build = importlib.import_module("assess.score").kernel_build   # assess.score is the function
    lines.append(f"cores: {os.cpu_count()}; kernel build: {build} (ASSESS_KERNEL_BUILD="
                 f"{os.environ.get('ASSESS_KERNEL_BUILD', '')}); OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '')}")
    return lines
