"""assess.dask.score: partition by partition, equal to assess.score, with an explicit meta."""
from __future__ import annotations

import pandas as pd
import pytest

import assess
from assess import batch

from spark_helpers import DASK_SKIP, screening_table

dd = pytest.importorskip("dask.dataframe", reason=DASK_SKIP, exc_type=ImportError)
from assess import dask as adask  # noqa: E402  (after the skip: the module itself needs no dask)

GBT = "gbt42195-2022"


@pytest.fixture(scope="module")
def ins():
    return assess.load_instrument(GBT)


def test_dask_equals_assess_score_row_by_row(ins):
    pdf = screening_table(100_000, seed=9).to_pandas()
    pdf.index = pdf.index * 10 + 7          # an index of its own, which must survive
    ddf = dd.from_pandas(pdf, npartitions=7)
    out = adask.score(ddf, GBT, keep=["row_id"])
    names = batch.output_schema(ins).names
    assert list(out.columns) == ["row_id", *names]
    got = out.compute(scheduler="threads")
    # The declared meta is what the partitions really hold.
    pd.testing.assert_series_equal(got.dtypes, out._meta.dtypes)
    assert got.index.equals(pdf.index)
    expected = assess.score(ins, pdf)
    pd.testing.assert_frame_equal(got[names], expected)     # assess.score keeps the frame's index too
    assert set(got["status"]) == {"ok", "not_allowed", "incomplete", "inconsistent"}


def test_dask_keep_and_settings(ins):
    pdf = screening_table(2_000, seed=5).to_pandas()
    ddf = dd.from_pandas(pdf, npartitions=2)
    settings = {"gbt42195-2022.coma_final_level": "3"}
    got = adask.score(ddf, GBT, settings=settings, keep=()).compute(scheduler="sync")
    pd.testing.assert_frame_equal(got.reset_index(drop=True), assess.score(ins, pdf, settings=settings))
    assert list(adask.score(ddf, GBT).columns) == [*pdf.columns, *batch.output_schema(ins).names]
    with pytest.raises(ValueError, match="clash"):
        adask.score(ddf.rename(columns={"row_id": "level"}), GBT, keep=["level"])
    with pytest.raises(ValueError, match="not columns"):
        adask.score(ddf, GBT, keep=["nobody"])
