"""Rows split across threads (assess/_columns.py ``_split``): one pool of threads kept for the
process, parts that always end before the call returns, and a forked child with a pool of its own.

The parts are handed buffers by address (the kernel reads raw pointers), so a call that returned
while a part still ran would let that part read memory its caller has freed.
"""
from __future__ import annotations

import multiprocessing
import signal
import threading
import time

import numpy as np
import pytest

import assess
from assess import _columns

ROWS = 200_000   # enough for two parts (a part needs 65,536 rows)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no interval timer on this platform")
def test_a_call_interrupted_while_waiting_returns_only_after_every_part_has_ended():
    """A signal (Ctrl-C, a task runner's time limit) that arrives while the calling thread waits for
    the other parts: the call still waits for them, then raises the signal's exception."""
    ended = threading.Event()

    class TimeLimit(Exception):
        pass

    def work(start, stop):
        if start > 0:
            time.sleep(0.5)
            ended.set()

    def limit(signum, frame):
        raise TimeLimit

    previous = signal.signal(signal.SIGALRM, limit)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(TimeLimit):
            _columns._split(work, ROWS, 2)
        assert ended.is_set()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_parts_error_reaches_the_caller_and_the_rows_are_covered_once():
    seen = []

    def work(start, stop):
        seen.append((int(start), int(stop)))
        if start > 0:
            raise ValueError("part failed")

    with pytest.raises(ValueError, match="part failed"):
        _columns._split(work, ROWS, 3)
    assert sorted(seen)[0][0] == 0 and sorted(seen)[-1][1] == ROWS
    assert sum(b - a for a, b in seen) == ROWS


def test_the_pool_is_kept_between_calls():
    _columns._split(lambda a, b: None, ROWS, 2)
    first = _columns._workers(1)
    _columns._split(lambda a, b: None, ROWS, 2)
    assert _columns._workers(1) is first


def _score_in_child(queue):
    ins = assess.load_instrument("gbt42195-2022")
    table = _table(ins)
    out = assess.score(ins, table, threads=2)
    queue.put(out.column("level").to_pylist())


def _table(ins):
    import pyarrow as pa
    rng = np.random.default_rng(3)
    cols = {i.id: pa.array(rng.choice(sorted({o.points for o in i.options}), ROWS).astype(np.int8)) for i in ins.items}
    cols["A.5.11"] = pa.array(np.zeros(ROWS, np.int8))
    for k in range(1, 6):
        cols[f"A.2.14.{k}"] = pa.array(np.zeros(ROWS, np.int8))
    cols["A.4.1"] = pa.array(["F03", "", "I10"] * (ROWS // 3) + [""] * (ROWS % 3))
    return pa.table(cols)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform")
def test_a_forked_child_scores_on_threads_of_its_own():
    """The parent's pool threads do not exist in a forked child: the child must make its own pool
    rather than wait for ever on the parent's (a worker process forked by a server, say)."""
    ins = assess.load_instrument("gbt42195-2022")
    expected = assess.score(ins, _table(ins), threads=2).column("level").to_pylist()   # the parent's pool exists
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_score_in_child, args=(queue,))
    child.start()
    try:
        got = queue.get(timeout=120)
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
    assert got == expected


@pytest.mark.parametrize("rows, batches", [(ROWS + 3, 1), (ROWS + 3, 3), (13, 1)])
def test_rule_flags_packed_by_the_threads_match_the_rule_bits(rows, batches):
    """The kernel's threads pack each rule's flag at whole bytes (parts start at multiples of 8
    rows); a table of several batches, whose bounds need not be whole bytes, is packed by pyarrow.
    Either way rule_<id> is bit <id's index> of rules, row for row."""
    import pyarrow as pa
    ins = assess.load_instrument("gbt42195-2022")
    table = _table(ins)
    table = pa.concat_tables([table] * 2).slice(5, rows).combine_chunks()
    cells = np.resize(np.array(["F03", "", "I10;F20", "G30"]), rows)
    table = table.set_column(table.column_names.index("A.4.1"), "A.4.1", pa.array(cells))
    a214 = np.resize(np.array([0, 1, 2], np.int8), rows)
    table = table.set_column(table.column_names.index("A.2.14.1"), "A.2.14.1", pa.array(a214))
    if batches > 1:
        step = rows // batches + 1
        table = pa.Table.from_batches(table.to_batches(max_chunksize=step))
        assert table.column(0).num_chunks == batches
    out = assess.score(ins, table, threads=2)
    bits = out.column("rules").to_numpy()
    for i, rule in enumerate(ins.rules):
        flags = out.column(f"rule_{rule.id}").to_numpy(zero_copy_only=False)
        np.testing.assert_array_equal(flags, (bits >> i) & 1 == 1, err_msg=rule.id)
        assert 0 < flags.sum() < rows or rule.id == "R1"
