"""Score a Dask DataFrame partition by partition with :func:`assess.score`.

A thin adapter: ``map_partitions`` hands each pandas partition to :func:`assess.score` and puts
the ``keep`` columns in front of the score columns, with the partition's index. The ``meta``
is explicit: it is the output of the same function on the empty frame of the input, so its
dtypes are exactly those :func:`assess.score` gives pandas (nullable integers, ``category`` for
``status`` and ``error_field`` with every category known). A bad row never fails a partition; it
comes back with its ``status`` and ``error_field``. Dask is an optional extra:
``pip install 'assess[dask]'``.
"""
from __future__ import annotations

import functools
from typing import Mapping, Sequence

from . import batch
from .score import resolve
from .score import score as _score

EXTRA_HINT = "pip install 'assess[dask]'"


def _make_meta():
    try:
        from dask.dataframe.utils import make_meta
    except ImportError as exc:
        raise ImportError(f"assess.dask needs dask[dataframe], which is not installed: {EXTRA_HINT}") from exc
    return make_meta


@functools.lru_cache(maxsize=8)
def _instrument(instrument_id: str, settings: tuple):
    """The instrument, loaded once per worker process."""
    return resolve(instrument_id, dict(settings) or None)


def _score_partition(pdf, instrument_id: str, settings: tuple, keep: tuple, threads: int):
    import pandas as pd
    ins = _instrument(instrument_id, settings)
    questions = [q for q in ins._questions if q in pdf.columns]
    scored = _score(ins, pdf[questions], threads=threads)
    scored.index = pdf.index
    return pd.concat([pdf[list(keep)], scored], axis=1)


def score(ddf, instrument_id: str, *, settings: Mapping | None = None, keep: Sequence[str] | None = None,
          threads: int = 1):
    """Score a Dask DataFrame: one row per assessment, one column per item or field id.

    Returns a Dask DataFrame with the ``keep`` columns (default: every input column; ``()`` for
    none) followed by the columns of :func:`assess.score`, partitions and index unchanged.
    ``settings`` is a plain dict of instrument settings, checked here before any task runs.
    ``threads`` is the kernel's thread count per partition; Dask's workers give the parallelism.
    """
    make_meta = _make_meta()
    ins = resolve(instrument_id, settings)
    names = list(ddf.columns)
    keep = tuple(names if keep is None else keep)
    unknown = [k for k in keep if k not in names]
    if unknown:
        raise ValueError(f"keep: {unknown} are not columns of the DataFrame. Columns: {names}")
    clash = sorted(set(keep) & set(batch.output_schema(ins).names))
    if clash:
        raise ValueError(f"keep: {clash} would clash with score columns of the same name. "
                         "Rename them or leave them out of keep.")
    settings_key = tuple(sorted((str(k), v) for k, v in (settings or {}).items()))
    args = (instrument_id, settings_key, keep, int(threads))
    meta = _score_partition(make_meta(ddf), *args)
    return ddf.map_partitions(_score_partition, *args, meta=meta)
