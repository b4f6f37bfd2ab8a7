# cython: language_level=3
"""Byte-level checks for ``assess screen``, built into the private extension ``assess._screen``.

The checks read one Arrow string array through its three buffers (validity bitmap, int32
offsets, UTF-8 data) and fill caller-owned numpy arrays; ``add_counts`` reads a numpy array of
levels or scores, and ``parse_csv`` a CSV chunk. Loops release the GIL and never raise.
Cells these loops do not decide alone (any byte outside printable ASCII, so a non-ASCII space, 年月日
or a full-width digit) are marked ``SLOW`` and decided by the pure-Python code they stand in for,
so the result is the same with or without this module (``assess.idnumber.check``,
``assess.screen.checks``; tests/screen/test_screen_fast.py compares both).

The hash set of identity numbers (:class:`IdSet`) keeps 12 bytes per slot, at most 75 % full, in
mapped memory that is mapped in whole when the set is made (see IdSet).
"""
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memchr, memcpy
from libc.stdlib cimport free, malloc

# The interface this module was built with; assess/_compiled.py names the one the Python code
# expects, and refuses a build whose number differs. Bump both together.
ABI = 1

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


cdef inline uint8_t code_cell(const uint8_t[::1] data, int64_t a, int64_t b, int8_t sentinel,
                              int8_t* out) noexcept nogil:
    """One answer cell data[a:b] (not null): its state, and its code (or ``sentinel``) in out."""
    cdef int64_t k, v
    cdef uint8_t c
    out[0] = sentinel
    if b - a == 1 and 48 <= data[a] <= 57:      # the common case: one digit
        out[0] = <int8_t>(data[a] - 48)
        return C_INT
    if not trim(data, &a, &b):
        return C_OTHER
    if a == b:
        return C_MISSING
    if b - a > 3 or (data[a] == 48 and b - a > 1):
        return C_OTHER
    v = 0
    for k in range(a, b):
        c = data[k]
        if c < 48 or c > 57:
            return C_OTHER
        v = v * 10 + c - 48
    if v > 127:
        return C_OTHER
    out[0] = <int8_t>v
    return C_INT


def parse_codes(const uint8_t[::1] data, const int32_t[::1] offsets, const uint8_t[::1] valid,
                Py_ssize_t voff, int8_t[::1] value, uint8_t[::1] state, uint8_t[::1] bitmap, int8_t sentinel):
    """Answer cells as small integer codes: ``state`` C_INT with the code in ``value`` (a plain
    0–127 written without sign or leading zero, ASCII spaces around allowed), C_MISSING (null or
    blank), else C_OTHER with ``sentinel`` in ``value``. ``bitmap`` gets the Arrow validity bits
    (not missing). Returns the number of C_OTHER cells."""
    cdef Py_ssize_t n = value.shape[0], i
    cdef Py_ssize_t other = 0
    cdef uint8_t st
    cdef int8_t v
    with nogil:
        for i in range((n + 7) >> 3):
            bitmap[i] = 0
        for i in range(n):
            if not is_valid(valid, i + voff):
                st = C_MISSING
                v = sentinel
            else:
                st = code_cell(data, offsets[i], offsets[i + 1], sentinel, &v)
            value[i] = v
            state[i] = st
            if st == C_OTHER:
                other += 1
            if st != C_MISSING:
                bitmap[i >> 3] |= 1 << (i & 7)
    return other


cdef enum:
    TILE = 64                # parse_csv: rows of codes per column gathered before ``value`` (a power of two)

cdef uint8_t STOP[256]      # parse_csv: 1 ends a cell (, and line feed), 2 ends a plain file (" and \r)
STOP[:] = [0] * 256
STOP[44] = STOP[10] = 1
STOP[34] = STOP[13] = 2


cdef Py_ssize_t _parse_csv(const uint8_t[::1] data, const int8_t[::1] kind, const int32_t[::1] index,
                           int8_t sentinel, int8_t missing, int8_t[:, ::1] value, int32_t[:, ::1] offsets,
                           uint8_t[:, ::1] text, int64_t[::1] starts, uint8_t[::1] present,
                           int64_t[::1] counts, int64_t[::1] nulls, int8_t* tile) noexcept nogil:
    # parse_csv's loop (below), apart so that it can return from inside its loops without the GIL.
    # Cell by cell: an answer written as one digit followed by the delimiter (nearly every cell)
    # costs two byte tests; any other cell is scanned to its delimiter (a text cell copied on the
    # way, which costs less than a call to memcpy for cells of a few bytes). No validity bits here:
    # most columns have no missing cell and need none, the others get theirs in one numpy pass.
    # Codes go to ``tile`` first, TILE rows per column, and on to ``value`` TILE rows at a time:
    # a store per cell straight into ``value``'s far-apart columns cost a third of the loop.
    cdef Py_ssize_t n = data.shape[0], ncols = kind.shape[0], p = 0, a, j, r = 0, k, nc = value.shape[0]
    cdef Py_ssize_t rows_cap = starts.shape[0] - 1
    cdef Py_ssize_t vstride = value.shape[1]
    cdef Py_ssize_t ostride = offsets.shape[1], tstride = text.shape[1]
    cdef const uint8_t* d
    cdef int8_t* vals = &value[0, 0] if value.shape[0] else NULL
    cdef int32_t* offs = &offsets[0, 0] if offsets.shape[0] else NULL
    cdef uint8_t* txt = &text[0, 0] if text.shape[0] else NULL
    cdef uint8_t* dst
    cdef uint8_t c, st, any_cell
    cdef int8_t v
    cdef int32_t used
    if n == 0:
        starts[0] = 0
        return 0
    d = &data[0]
    for k in range(nc):
        counts[k] = 0
    for k in range(nulls.shape[0]):
        nulls[k] = 0
    for k in range(offsets.shape[0]):
        offs[k * ostride] = 0
    while p < n:
        if r >= rows_cap:
            return -2
        starts[r] = p
        any_cell = 0
        for j in range(ncols):
            # the cell of column j starts at p; the previous delimiter was a comma (or line start)
            a = p
            k = index[j]
            if kind[j] == 1 and p + 1 < n and 48 <= d[p] <= 57 and (d[p + 1] == 44 or d[p + 1] == 10):
                tile[k * TILE + (r & (TILE - 1))] = <int8_t>(d[p] - 48)
                any_cell = 1
                p += 1
            elif kind[j] == 2:
                used = offs[k * ostride + r]
                dst = txt + k * tstride + used - a
                while p < n:
                    c = d[p]
                    if STOP[c]:
                        break
                    dst[p] = c
                    p += 1
                if p < n and STOP[d[p]] == 2:      # " or \r: not a plain file
                    return -1
                if p > a:
                    any_cell = 1
                    used += <int32_t>(p - a)
                else:
                    nulls[nc + k] += 1
                offs[k * ostride + r + 1] = used
            else:
                while p < n and STOP[d[p]] == 0:
                    p += 1
                if p < n and STOP[d[p]] == 2:
                    return -1
                if kind[j] == 1:
                    if p == a:
                        st = C_MISSING
                    else:
                        st = code_cell(data, a, p, sentinel, &v)
                        any_cell = 1
                    if st == C_OTHER:
                        counts[k] += 1
                    if st == C_MISSING:
                        nulls[k] += 1
                        v = missing
                    tile[k * TILE + (r & (TILE - 1))] = v
            # p is at this cell's delimiter (or the end of the data)
            if j + 1 < ncols:
                if p >= n or d[p] != 44:        # the line ends early
                    return -1
                p += 1
        if p < n and d[p] != 10:                # the line goes on: more cells than the header
            return -1
        present[r] = any_cell
        p += 1
        r += 1
        if r & (TILE - 1) == 0:
            flush_tile(tile, vals, nc, vstride, r - TILE, TILE)
    flush_tile(tile, vals, nc, vstride, r & ~(TILE - 1), r & (TILE - 1))
    starts[r] = n + 1 if d[n - 1] != 10 else n
    return r


cdef inline void flush_tile(const int8_t* tile, int8_t* vals, Py_ssize_t nc, Py_ssize_t vstride, Py_ssize_t r0,
                            Py_ssize_t rows) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(nc):
        memcpy(vals + k * vstride + r0, tile + k * TILE, rows)


def count_byte(const uint8_t[::1] data, uint8_t c):
    """How many times byte c occurs in data (memchr)."""
    cdef Py_ssize_t n = data.shape[0], count = 0
    cdef const uint8_t* p
    cdef const uint8_t* end
    if n == 0:
        return 0
    with nogil:
        p = &data[0]
        end = p + n
        while p < end:
            p = <const uint8_t*>memchr(p, c, end - p)
            if p == NULL:
                break
            count += 1
            p += 1
    return count


def parse_csv(const uint8_t[::1] data, const int8_t[::1] kind, const int32_t[::1] index, int8_t sentinel,
              int8_t missing, int8_t[:, ::1] value, int32_t[:, ::1] offsets, uint8_t[:, ::1] text,
              int64_t[::1] starts, uint8_t[::1] present, int64_t[::1] counts, int64_t[::1] nulls):
    """Whole CSV lines (UTF-8, no quotes) straight into columns, for the plain files that make up
    almost every screening export. Input column j is skipped (``kind`` 0), read as an answer code
    into row ``index[j]`` of ``value`` exactly as :func:`parse_codes` reads its text (kind 1: the
    code for C_INT, ``sentinel`` for C_OTHER, ``missing`` for C_MISSING), or kept as text in row
    ``index[j]`` of offsets/text (kind 2): the bytes between the commas, an empty cell being null,
    as pyarrow's reader with ``null_values=[""]`` gives them. ``starts`` gets each line's first
    byte (and the end of the data after the last line), ``present`` whether any column read has a
    non-empty cell, ``counts[k]`` the C_OTHER cells of code column k, ``nulls`` the missing cells
    of each code column, then the empty cells of each text column. Returns the number of rows;
    -1 when the data hold a quote or a carriage return, or a line with another number of cells
    than ``kind`` has: such data go to pyarrow; -2 when the data hold more lines than ``starts``
    has room for. After -1 or -2 the arrays' contents are undefined."""
    cdef Py_ssize_t r
    cdef int8_t* tile = <int8_t*>malloc(TILE * max(value.shape[0], 1))
    if tile == NULL:
        raise MemoryError()
    try:
        with nogil:
            r = _parse_csv(data, kind, index, sentinel, missing, value, offsets, text, starts, present, counts,
                           nulls, tile)
    finally:
        free(tile)
    return r


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
            s = 0
            kk = 0
            for j in range(min(b - a, 17)):   # the body digits, with the check sum and the key on the way
                c = data[a + j]
                if c < 48 or c > 57:
                    digits = False
                    break
                s += (c - 48) * WEIGHTS[j]
                kk = kk * 10 + c - 48
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


def id_texts(const int64_t[::1] key, const int8_t[::1] reason, uint8_t[:, ::1] out):
    """The normalised text of each OK row's number as 18 bytes of ``out``: its 17 body digits (from
    ``key``, as check_ids leaves them) and the check character, so upper-case X and no spaces. The
    bytes of other rows are set to "0" (they sit under a null)."""
    cdef Py_ssize_t n = key.shape[0], i, j
    cdef int64_t k
    cdef int s
    with nogil:
        for i in range(n):
            if reason[i] != OK:
                for j in range(18):
                    out[i, j] = 48
                continue
            k = key[i]
            s = 0
            for j in range(16, -1, -1):
                out[i, j] = <uint8_t>(48 + k % 10)
                s += <int>(k % 10) * WEIGHTS[j]
                k //= 10
            out[i, 17] = <uint8_t>CHECK_CHARS[s % 11]


ctypedef int8_t (*cell_fn)(const uint8_t[::1] data, int64_t a, int64_t b) noexcept nogil


cdef Py_ssize_t small_codes(const uint8_t[::1] data, const int32_t[::1] offsets, const uint8_t[::1] valid,
                            Py_ssize_t voff, int8_t[::1] out, cell_fn fn) noexcept nogil:
    # fn of every non-null cell, 0 for a null one; returns how many cells fn left to Python (SLOW).
    cdef Py_ssize_t i, slow = 0
    for i in range(out.shape[0]):
        out[i] = fn(data, offsets[i], offsets[i + 1]) if is_valid(valid, i + voff) else 0
        if out[i] == SLOW:
            slow += 1
    return slow


cdef int8_t sex_cell(const uint8_t[::1] data, int64_t a, int64_t b) noexcept nogil:
    cdef int64_t k, w
    cdef uint8_t c
    for k in range(a, b):
        if 28 <= data[k] <= 31:         # whitespace to str.strip(), not to this loop
            return SLOW
    while a < b and is_space(data[a]):
        a += 1
    while b > a and is_space(data[b - 1]):
        b -= 1
    w = b - a
    for k in range(a, b):
        if data[k] >= 128:
            if w == 3 and data[a] == 0xE7 and data[a + 1] == 0x94 and data[a + 2] == 0xB7:
                return 1                # 男
            if w == 3 and data[a] == 0xE5 and data[a + 1] == 0xA5 and data[a + 2] == 0xB3:
                return 2                # 女
            return SLOW
    if w == 1:
        c = data[a] - 32 if 97 <= data[a] <= 122 else data[a]     # upper case
        if c == 49 or c == 77:          # 1 M
            return 1
        if c == 50 or c == 70:          # 2 F
            return 2
        if c == 48 or c == 57:          # 0 9
            return 0
    if w == 4 and upper_is(data, a, b"MALE", 4):
        return 1
    if w == 6 and upper_is(data, a, b"FEMALE", 6):
        return 2
    return -1


cdef inline bint upper_is(const uint8_t[::1] data, int64_t a, const char* word, int w) noexcept nogil:
    cdef int k
    cdef uint8_t c
    for k in range(w):
        c = data[a + k]
        if 97 <= c <= 122:
            c -= 32
        if c != <uint8_t>word[k]:
            return False
    return True


cdef int8_t region_cell(const uint8_t[::1] data, int64_t a, int64_t b) noexcept nogil:
    if not trim(data, &a, &b):
        return SLOW
    return 0 if b - a == 6 and digits_at(data, a, 6) >= 0 else 1


def sex_codes(const uint8_t[::1] data, const int32_t[::1] offsets, const uint8_t[::1] valid, Py_ssize_t voff,
              int8_t[::1] sex):
    """Sex cells as ``assess.screen.checks`` reads them (``_SEX_CODES`` of the stripped, upper-cased
    text): 1 男/1/M/MALE, 2 女/2/F/FEMALE, 0 for 0/9 or a null cell, -1 for anything else; SLOW for
    cells with other non-ASCII bytes (未知, a non-ASCII space …), which Python decides. Returns the
    number of SLOW cells."""
    cdef Py_ssize_t slow
    with nogil:
        slow = small_codes(data, offsets, valid, voff, sex, sex_cell)
    return slow


def region_codes(const uint8_t[::1] data, const int32_t[::1] offsets, const uint8_t[::1] valid, Py_ssize_t voff,
                 int8_t[::1] wrong):
    """Region cells: 0 for a null cell or six ASCII digits (spaces around allowed), 1 for anything
    else, SLOW for cells with bytes only Python may judge. Returns the number of SLOW cells."""
    cdef Py_ssize_t slow
    with nogil:
        slow = small_codes(data, offsets, valid, voff, wrong, region_cell)
    return slow


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


cdef packed struct Slot:
    int64_t key          # the key + 1; 0: empty
    uint32_t line


cdef extern from *:
    void __builtin_prefetch(const void* addr) nogil


cdef extern from "<sys/mman.h>" nogil:
    void* mmap(void* addr, size_t length, int prot, int flags, int fd, long offset)
    int munmap(void* addr, size_t length)
    int PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS
    void* MAP_FAILED


cdef extern from *:
    """
    #include <sys/mman.h>
    #ifndef MAP_POPULATE
    #define MAP_POPULATE 0   /* Linux only: elsewhere pages are faulted in as first written */
    #endif
    """
    int MAP_POPULATE


cdef enum:
    PREFETCH = 16        # slots asked for this many rows ahead of the one being probed


cdef class IdSet:
    """Identity keys (non-negative int64) seen so far and the input line of each: open addressing,
    linear probing, 12 bytes a slot (key and line side by side, so a probe misses the cache once),
    doubled when 75 % full. A province file's set is far larger than the caches: each row's slot
    is fetched ``PREFETCH`` rows ahead, so that the misses overlap instead of queueing. The slots
    are zeroed memory mapped in at once (MAP_POPULATE, on Linux): the random probes of a province
    file's first chunks would otherwise fault in nearly every page of a 192 MB set one by one,
    0.4–0.7 s of CPU against about 0.1 s. They are 4 kB pages: 2 MB pages took 0.4 s to map in and
    made no probe faster (12 M keys: 0.31–0.35 s either way)."""

    cdef Slot* slots
    cdef readonly Py_ssize_t size, count

    def __cinit__(self, Py_ssize_t capacity=1 << 16):
        self.size = 1
        while self.size < capacity:
            self.size <<= 1
        self.count = 0
        self.slots = NULL
        self.slots = self._alloc(self.size)

    cdef Slot* _alloc(self, Py_ssize_t size) except NULL:
        cdef size_t nbytes = size * sizeof(Slot)
        cdef void* mem
        with nogil:
            mem = mmap(NULL, nbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0)
        if mem == MAP_FAILED:
            raise MemoryError()
        return <Slot*>mem

    def __dealloc__(self):
        if self.slots != NULL:
            munmap(self.slots, self.size * sizeof(Slot))

    cdef void _grow(self) except *:
        cdef Slot* old_slots = self.slots
        cdef Py_ssize_t old = self.size, i
        self.slots = self._alloc(old * 2)
        self.size = old * 2
        for i in range(old):
            if old_slots[i].key != 0:
                self._put(old_slots[i].key - 1, old_slots[i].line)
        munmap(old_slots, old * sizeof(Slot))

    cdef inline uint32_t _put(self, int64_t k, uint32_t line) noexcept nogil:
        """The line stored for k, or 0 after storing k with ``line``."""
        cdef uint64_t mask = self.size - 1
        cdef uint64_t h = mix(<uint64_t>k) & mask
        k += 1
        while self.slots[h].key != 0:
            if self.slots[h].key == k:
                return self.slots[h].line
            h = (h + 1) & mask
        self.slots[h].key = k
        self.slots[h].line = line
        return 0

    def first_lines(self, const int64_t[::1] keys, const int64_t[::1] lines, int64_t[::1] first):
        """For each row in order: the line of an earlier row with the same key, or 0 (and the key
        is registered with this row's line). Negative keys are ignored (first = 0)."""
        cdef Py_ssize_t n = keys.shape[0], i, j, step
        cdef uint64_t mask
        cdef uint32_t f
        i = 0
        while i < n:
            while (self.count + min(n - i, 65536)) * 4 > self.size * 3:
                self._grow()
            step = min(n - i, 65536)
            mask = self.size - 1
            with nogil:
                for j in range(i, min(i + PREFETCH, n)):
                    if keys[j] >= 0:
                        __builtin_prefetch(&self.slots[mix(<uint64_t>keys[j]) & mask])
                for j in range(i, i + step):
                    if j + PREFETCH < n and keys[j + PREFETCH] >= 0:
                        __builtin_prefetch(&self.slots[mix(<uint64_t>keys[j + PREFETCH]) & mask])
                    if keys[j] < 0:
                        first[j] = 0
                        continue
                    f = self._put(keys[j], <uint32_t>lines[j])
                    first[j] = f
                    if f == 0:
                        self.count += 1
            i += step


def copy_runs(const uint8_t[::1] src, uint8_t[::1] dst, Py_ssize_t width, const int64_t[::1] starts,
              const int64_t[::1] ends):
    """Rows [starts[i], ends[i]) of a column of fixed ``width`` bytes a row, one run after another,
    into ``dst``: the rows a batch keeps, when it keeps nearly all of them (one copy a run instead
    of a test a row). Returns the bytes written."""
    cdef Py_ssize_t i, pos = 0, m
    with nogil:
        for i in range(starts.shape[0]):
            m = (ends[i] - starts[i]) * width
            memcpy(&dst[pos], &src[starts[i] * width], m)
            pos += m
    return pos


def copy_text_runs(const uint8_t[::1] data, const int32_t[::1] offsets, uint8_t[::1] out, int32_t[::1] out_offsets,
                   const int64_t[::1] starts, const int64_t[::1] ends):
    """:func:`copy_runs` for a text column: the bytes of rows [starts[i], ends[i]) into ``out`` and
    their bounds into ``out_offsets`` (one more than the rows kept). Returns the bytes written."""
    cdef Py_ssize_t i, r, j = 0
    cdef int32_t pos = 0, a, b
    with nogil:
        out_offsets[0] = 0
        for i in range(starts.shape[0]):
            a = offsets[starts[i]]
            b = offsets[ends[i]]
            if b > a:
                memcpy(&out[pos], &data[a], b - a)
            for r in range(starts[i], ends[i]):
                out_offsets[j + 1] = out_offsets[j] + offsets[r + 1] - offsets[r]
                j += 1
            pos += b - a
    return pos


ctypedef fused small_int_t:
    int8_t
    int32_t


def add_counts(const small_int_t[::1] values, int64_t[::1] counts):
    """counts[v] += 1 for each value, values below 0 counted at 0 and above the last slot at the
    last (the screening summary's score distributions), without numpy's copy to intp."""
    cdef Py_ssize_t i, n = values.shape[0], top = counts.shape[0] - 1
    cdef int64_t v
    if top < 0:
        return
    with nogil:
        for i in range(n):
            v = values[i]
            counts[0 if v < 0 else (top if v > top else v)] += 1
