"""GB 11643 identity numbers: both sides of every rule (shared/reference/data-hygiene.md §1)."""
import datetime as dt
import random

import numpy as np
import pyarrow as pa
import pytest

from assess import idnumber as I

AS_OF = dt.date(2026, 1, 15)


def make(region="110105", birth="19491231", seq="002"):
    body = region + birth + seq
    return body + I.check_char(body)


def test_appendix_vectors_pass():
    a = I.check("11010519491231002X", AS_OF)
    assert a.ok and a.birth == dt.date(1949, 12, 31) and a.sex == 2
    b = I.check("440524188001010014", AS_OF)
    assert b.ok and b.birth == dt.date(1880, 1, 1) and b.sex == 1


def test_weights_are_powers_of_two_mod_11():
    assert list(I.WEIGHTS) == [pow(2, 17 - i, 11) for i in range(17)]


@pytest.mark.parametrize("value, reason", [
    ("11010519491231002X", I.OK),
    ("11010519491231002x", I.OK),                      # lowercase x accepted
    ("11010519491231002", I.MALFORMED),                # 17 characters
    ("11010519491231002X0", I.MALFORMED),              # 19 characters
    ("1101051949123100AX", I.MALFORMED),               # a letter in the body
    ("11010519491231002Y", I.MALFORMED),               # last neither digit nor X
    ("110105491231002", I.LEGACY_15),                  # GB 11643-1989 layout: never upgraded
    ("11010549123100A", I.MALFORMED),
    (None, I.MISSING), ("", I.MISSING), ("   ", I.MISSING),
    (110105194912310021, I.MALFORMED),                 # a number is never an identity number
    (make(birth="19000229"), I.BAD_DATE),              # 1900 is not a leap year
    (make(birth="20000229"), I.OK),                    # 2000 is
    (make(birth="19491301"), I.BAD_DATE),
    (make(birth="19491200"), I.BAD_DATE),
    (make(birth="17991231"), I.BAD_DATE),
    (make(birth="20260115"), I.OK),                    # born on the assessment date
    (make(birth="20260116"), I.FUTURE_DATE),           # the day after
    ("110105194912310021", I.BAD_CHECK),               # correct is X
    ("440524188001010015", I.BAD_CHECK),
])
def test_rules(value, reason):
    assert I.check(value, AS_OF).reason == reason
    if isinstance(value, (str, type(None))):
        assert I.check_array(pa.array([value], pa.string()), AS_OF).reason[0] == reason


def test_normalises_lowercase_x_and_whitespace():
    assert I.check(" 11010519491231002x ", AS_OF).number == "11010519491231002X"
    assert I.check_array(pa.array(["11010519491231002x"]), AS_OF).number[0].as_py() == "11010519491231002X"


@pytest.mark.parametrize("seq, sex", [("001", 1), ("002", 2), ("999", 1), ("000", 2)])
def test_sex_from_sequence_parity(seq, sex):
    assert I.check(make(seq=seq), AS_OF).sex == sex


def test_wrong_check_reports_expected():
    assert I.check("110105194912310021", AS_OF).expected_check == "X"


@pytest.mark.parametrize("value, shown", [
    ("11010519491231002X", "110105***********X"), ("110105491231002", "110105********2"), ("123", "***"), (None, "")])
def test_mask_keeps_first_6_and_last_1(value, shown):
    assert I.mask(value) == shown


def test_array_agrees_with_scalar(seed=7):
    rng = random.Random(seed)
    values = []
    for _ in range(3000):
        s = list(make(birth=f"{rng.randint(1890, 2030)}{rng.randint(0, 13):02d}{rng.randint(0, 32):02d}",
                      seq=f"{rng.randint(0, 999):03d}", region=rng.choice(["110105", "440524", "310104"])))
        op = rng.random()
        if op < 0.2:
            s[rng.randrange(18)] = rng.choice("0123456789Xx a")
        elif op < 0.25:
            s = s[:15]
        elif op < 0.3:
            s = s[:-1]
        values.append("".join(s))
    arr = I.check_array(pa.array(values), AS_OF)
    for i, v in enumerate(values):
        c = I.check(v, AS_OF)
        assert arr.reason[i] == c.reason, v
        if c.ok:
            assert arr.birth[i] == np.datetime64(c.birth) and arr.sex[i] == c.sex
            assert arr.key[i] == int(c.number[:17])
