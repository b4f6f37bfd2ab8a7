"""Without the extras installed, assess.spark / assess.dask import fine and say what to install."""
from __future__ import annotations

import sys

import pytest

from assess import dask as adask
from assess import spark as aspark


@pytest.mark.parametrize("module, blocked, extra", [
    (aspark, ("pyspark", "pyspark.sql", "pyspark.sql.types"), "assess[spark]"),
    (adask, ("dask", "dask.dataframe", "dask.dataframe.utils"), "assess[dask]"),
])
def test_missing_extra_names_it(monkeypatch, module, blocked, extra):
    for name in blocked:
        monkeypatch.setitem(sys.modules, name, None)     # import of a None entry raises ImportError
    with pytest.raises(ImportError, match=extra.replace("[", r"\[").replace("]", r"\]")):
        module.score(object(), "gbt42195-2022")
