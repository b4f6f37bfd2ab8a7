# cython: language_level=3
"""Byte-level checks for ``assess screen``, built into the private extension ``assess._screen``.

Every function reads one Arrow string array through its three buffers (validity bitmap, int32
offsets, UTF-8 data) and fills caller-owned numpy arrays; loops release the GIL and never raise.
Cells these loops do not decide alone (any byte outside printable ASCII, so a non-ASCII space, 年月日
or a full-width digit) are marked ``SLOW`` and decided by the pure-Python code they stand in for,
so the result is the same with or without this module (``assess.idnumber.check``,
``assess.screen.checks``; tests/screen/test_screen_fast.py compares both).

The hash set of identity numbers (:class:`IdSet`) keeps 12 bytes per slot, at most 75 % full.
"""
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free

cdef enum:
    # idnumber reasons (assess/idnumber.py mirrors these numbers)
    OK = 0
    MISSING = 1
    LEGACY_15 = 2
    MALFORMED = 3
    BAD_DATE = 4
    FUTURE_DATE = 5
    BAD_CHECK = 6
    SLOW = 127
    # code cell states (assess/screen/codes.py mirrors these numbers)
    C_INT = 0
    C_MISSING = 1
    C_OTHER = 2
    # date cell states
    D_OK = 0
    D_EMPTY = 1
    D_BAD = 2
    D_SLOW = 3
    MIN_YEAR = 1800

cdef int WEIGHTS[17]
WEIGHTS[:] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
cdef char* CHECK_CHARS = b"10X98765432"
cdef int DAYS[13]
DAYS[:] = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


cdef inline bint is_space(uint8_t c) noexcept nogil:
    # The ASCII characters both str.strip() and Arrow's utf8_trim_whitespace remove.
    return c == 32 or (9 <= c <= 13)


cdef inline bint is_odd(uint8_t c) noexcept nogil:
    # Bytes where str.strip() and utf8_trim_whitespace may disagree, or non-ASCII: decide in Python.
    return c >= 128 or (28 <= c <= 31)


cdef inline bint is_valid(const uint8_t[::1] valid, Py_ssize_t i) noexcept nogil:
    return valid.shape[0] == 0 or (valid[i >> 3] >> (i & 7)) & 1


cdef inline bint leap(int64_t y) noexcept nogil:
    return (y % 4 == 0) and (y % 100 != 0 or y % 400 == 0)


cdef inline int days_in_month(int64_t y, int64_t m) noexcept nogil:
    return DAYS[m] + (1 if m == 2 and leap(y) else 0)


cdef inline int64_t days_from_civil(int64_t y, int64_t m, int64_t d) noexcept nogil:
    # Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    cdef int64_t era, yoe, doy, doe
    if m <= 2:
        y -= 1
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef inline bint trim(const uint8_t[::1] data, int64_t* a, int64_t* b) noexcept nogil:
    """Trim ASCII whitespace from [a, b); False when a cell holds a byte only Python may judge."""
    cdef int64_t k
    for k in range(a[0], b[0]):
        if is_odd(data[k]):
            return False
    while a[0] < b[0] and is_space(data[a[0]]):
        a[0] += 1
    while b[0] > a[0] and is_space(data[b[0] - 1]):
        b[0] -= 1
    return True


def parse_codes(const uint8_t[::1] data, const int32_t[::1] offsets, const uint8_t[::1] valid,
                Py_ssize_t voff, int8_t[::1] value, uint8_t[::1] state, uint8_t[::1] bitmap, int8_t sentinel):
    """Answer cells as small integer codes: ``state`` C_INT with the code in ``value`` (a plain
    0–127 written without sign or leading zero, ASCII spaces around allowed), C_MISSING (null or
    blank), else C_OTHER with ``sentinel`` in ``value``. ``bitmap`` gets the Arrow validity bits
    (not missing). Returns the number of C_OTHER cells."""
    cdef Py_ssize_t n = value.shape[0], i
    cdef int64_t a, b, k, v
    cdef Py_ssize_t other = 0
    cdef uint8_t c, st
    with nogil:
        for i in range((n + 7) >> 3):
            bitmap[i] = 0
        for i in range(n):
            st = C_OTHER
            v = sentinel
            if not is_valid(valid, i + voff):
                st = C_MISSING
            else:
                a = offsets[i]
                b = offsets[i + 1]
                if b - a == 1 and 48 <= data[a] <= 57:      # the common case: one digit
                    st = C_INT
                    v = data[a] - 48
                elif trim(data, &a, &b):
                    if a == b:
                        st = C_MISSING
                    elif b - a <= 3 and not (data[a] == 48 and b - a > 1):
                        v = 0
                        for k in range(a, b):
                            c = data[k]
                            if c < 48 or c > 57:
                                v = -1
                                break
                            v = v * 10 + c - 48
                        if 0 <= v <= 127:
                            st = C_INT
                        else:
                            v = sentinel
            value[i] = <int8_t>v
            state[i] = st
            if st == C_OTHER:
                other += 1
            if st != C_MISSING:
                bitmap[i >> 3] |= 1 << (i & 7)
    return other


def check_ids(const uint8_t[::1] data, const int32_t[::1] offsets, const uint8_t[::1] valid, Py_ssize_t voff,
              int64_t as_of_days, int8_t[::1] reason, int32_t[::1] birth, int8_t[::1] sex, int64_t[::1] key):
    """GB 11643 identity numbers, as ``assess.idnumber.check`` judges them, in its order of tests.
    ``birth`` (days since 1970), ``sex`` (1 odd, 2 even) and ``key`` (the 17 body digits) are set
    for OK rows only. Cells with bytes only Python may judge get reason SLOW. Returns the number
    of OK cells that are not already written as normalised (spaces around, a lowercase x)."""
    cdef Py_ssize_t n = reason.shape[0], i, j
    cdef int64_t a, b, y, m, d, s, kk, days
    cdef Py_ssize_t renorm = 0
    cdef uint8_t c, last
    cdef bint digits
    with nogil:
        for i in range(n):
            birth[i] = 0
            sex[i] = 0
            key[i] = -1
            if not is_valid(valid, i + voff):
                reason[i] = MISSING
                continue
            a = offsets[i]
            b = offsets[i + 1]
            if not trim(data, &a, &b):
                reason[i] = SLOW
                continue
            if a == b:
                reason[i] = MISSING
                continue
            digits = True
            for j in range(min(b - a, 17)):
                c = data[a + j]
                if c < 48 or c > 57:
                    digits = False
                    break
            if b - a == 15 and digits:
                reason[i] = LEGACY_15
                continue
            last = data[b - 1]
            if b - a != 18 or not digits or not ((48 <= last <= 57) or last == 88 or last == 120):
                reason[i] = MALFORMED
                continue
            y = (data[a + 6] - 48) * 1000 + (data[a + 7] - 48) * 100 + (data[a + 8] - 48) * 10 + data[a + 9] - 48
            m = (data[a + 10] - 48) * 10 + data[a + 11] - 48
            d = (data[a + 12] - 48) * 10 + data[a + 13] - 48
            if y < MIN_YEAR or m < 1 or m > 12 or d < 1 or d > days_in_month(y, m):
                reason[i] = BAD_DATE
                continue
            days = days_from_civil(y, m, d)
            if days > as_of_days:
                reason[i] = FUTURE_DATE
                continue
            s = 0
            kk = 0
            for j in range(17):
                s += (data[a + j] - 48) * WEIGHTS[j]
                kk = kk * 10 + data[a + j] - 48
            if last == 120:
                last = 88
            if <uint8_t>CHECK_CHARS[s % 11] != last:
                reason[i] = BAD_CHECK
                continue
            reason[i] = OK
            birth[i] = <int32_t>days
            sex[i] = 1 if (data[a + 16] - 48) % 2 else 2
            key[i] = kk
            if data[b - 1] == 120 or a != offsets[i] or b != offsets[i + 1]:
                renorm += 1
    return renorm


cdef inline int64_t digits_at(const uint8_t[::1] data, int64_t a, int64_t w) noexcept nogil:
    cdef int64_t v = 0, k
    for k in range(a, a + w):
        if data[k] < 48 or data[k] > 57:
            return -1
        v = v * 10 + data[k] - 48
    return v


cdef inline bint is_sep(uint8_t c) noexcept nogil:
    return c == 45 or c == 47 or c == 46       # - / .


def parse_dates(const uint8_t[::1] data, const int32_t[::1] offsets, const uint8_t[::1] valid, Py_ssize_t voff,
                int32_t[::1] days, uint8_t[::1] state):
    """Dates written YYYY-M-D (separators - / . in either place, month and day of one or two
    digits) or YYYYMMDD, and real calendar dates: D_OK with ``days`` since 1970; D_EMPTY (null or
    blank), D_BAD, or D_SLOW for cells with other bytes (年 月 日 …), which Python decides.
    Returns the number of D_SLOW cells."""
    cdef Py_ssize_t n = days.shape[0], i
    cdef int64_t a, b, w, y, m, d, p
    cdef Py_ssize_t slow = 0
    with nogil:
        for i in range(n):
            days[i] = 0
            if not is_valid(valid, i + voff):
                state[i] = D_EMPTY
                continue
            a = offsets[i]
            b = offsets[i + 1]
            if not trim(data, &a, &b):
                state[i] = D_SLOW
                slow += 1
                continue
            w = b - a
            if w == 0:
                state[i] = D_EMPTY
                continue
            y = m = d = -1
            if w >= 8 and w <= 10 and is_sep(data[a + 4]):
                y = digits_at(data, a, 4)
                p = a + 5
                if p + 1 < b and is_sep(data[p + 1]):
                    m = digits_at(data, p, 1)
                    p += 2
                elif p + 2 < b and is_sep(data[p + 2]):
                    m = digits_at(data, p, 2)
                    p += 3
                else:
                    p = b
                if b - p == 1 or b - p == 2:
                    d = digits_at(data, p, b - p)
                else:
                    m = -1
            elif w == 8:
                y = digits_at(data, a, 4)
                m = digits_at(data, a + 4, 2)
                d = digits_at(data, a + 6, 2)
            if 0 <= y < 1000 and m >= 0 and d >= 0:
                # Years before 1000: let Arrow's parser say, as it always has.
                state[i] = D_SLOW
                slow += 1
                continue
            if y < 1 or m < 1 or m > 12 or d < 1 or d > days_in_month(y, m):
                state[i] = D_BAD
                continue
            state[i] = D_OK
            days[i] = <int32_t>days_from_civil(y, m, d)
    return slow


cdef inline uint64_t mix(uint64_t x) noexcept nogil:
    # splitmix64 finaliser: spreads the nearly sequential keys over the table.
    x ^= x >> 30
    x *= 0xbf58476d1ce4e5b9ULL
    x ^= x >> 27
    x *= 0x94d049bb133111ebULL
    x ^= x >> 31
    return x


cdef class IdSet:
    """Identity keys (non-negative int64) seen so far and the input line of each: open addressing,
    linear probing, 12 bytes a slot, doubled when 75 % full."""

    cdef int64_t* keys
    cdef uint32_t* lines
    cdef readonly Py_ssize_t size, count

    def __cinit__(self, Py_ssize_t capacity=1 << 16):
        self.size = 1
        while self.size < capacity:
            self.size <<= 1
        self.count = 0
        self.keys = NULL
        self.lines = NULL
        self._alloc(self.size)

    cdef void _alloc(self, Py_ssize_t size) except *:
        cdef int64_t* keys = <int64_t*>calloc(size, sizeof(int64_t))
        cdef uint32_t* lines = <uint32_t*>calloc(size, sizeof(uint32_t))
        cdef Py_ssize_t i
        if keys == NULL or lines == NULL:
            free(keys)
            free(lines)
            raise MemoryError()
        for i in range(size):
            keys[i] = -1
        self.keys = keys
        self.lines = lines

    def __dealloc__(self):
        free(self.keys)
        free(self.lines)

    cdef void _grow(self) except *:
        cdef int64_t* old_keys = self.keys
        cdef uint32_t* old_lines = self.lines
        cdef Py_ssize_t old = self.size, i
        self._alloc(old * 2)
        self.size = old * 2
        for i in range(old):
            if old_keys[i] >= 0:
                self._put(old_keys[i], old_lines[i])
        free(old_keys)
        free(old_lines)

    cdef inline uint32_t _put(self, int64_t k, uint32_t line) noexcept nogil:
        """The line stored for k, or 0 after storing k with ``line``."""
        cdef uint64_t mask = self.size - 1
        cdef uint64_t h = mix(<uint64_t>k) & mask
        while self.keys[h] >= 0:
            if self.keys[h] == k:
                return self.lines[h]
            h = (h + 1) & mask
        self.keys[h] = k
        self.lines[h] = line
        return 0

    def first_lines(self, const int64_t[::1] keys, const int64_t[::1] lines, int64_t[::1] first):
        """For each row in order: the line of an earlier row with the same key, or 0 (and the key
        is registered with this row's line). Negative keys are ignored (first = 0)."""
        cdef Py_ssize_t n = keys.shape[0], i, j, step
        cdef uint32_t f
        i = 0
        while i < n:
            while (self.count + min(n - i, 65536)) * 4 > self.size * 3:
                self._grow()
            step = min(n - i, 65536)
            with nogil:
                for j in range(i, i + step):
                    if keys[j] < 0:
                        first[j] = 0
                        continue
                    f = self._put(keys[j], <uint32_t>lines[j])
                    first[j] = f
                    if f == 0:
                        self.count += 1
            i += step
