# cython: language_level=3
"""The scoring kernel: one loop that runs any compiled instrument plan over columnar batches.

Built into the private extension ``assess._kernel``. It mirrors ``assess/_reference.py`` exactly
(tests/test_kernel_parity.py); read that module for the meaning of each step. The loop holds no
state between rows, releases the GIL and never raises: every problem becomes the row's status.

Rows are processed in chunks of CHUNK rows, column by column, so every inner loop is one tight
pass with one dtype switch per column and chunk. Item points go straight from a per-item table
into a per-domain accumulator that packs (points << 16) + (count of unanswered or not-allowed
items): one load, add and store per cell. Rows with a problem (rare) are resolved afterwards,
question by question.
"""
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t, uint16_t, uintptr_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset
from libc.math cimport isnan, floor

import sys

# The interface this module was built with; assess/_compiled.py names the one the Python code
# expects, and refuses a build whose number differs. Bump both together.
ABI = 4

cdef enum:
    CHUNK = 1024
    # option index states below 0
    MISSING = -1
    BAD = -2
    # column kinds (assess/_columns.py mirrors these numbers)
    K_ABSENT = 0
    K_INT8 = 1
    K_INT16 = 2
    K_INT32 = 3
    K_INT64 = 4
    K_UINT8 = 5
    K_UINT16 = 6
    K_UINT32 = 7
    K_FLOAT64 = 8
    K_INDEX = 9     # int16 option indexes already mapped in Python (string and ICD-10 columns)
    K_FLOAT32 = 10
    CODE_LO = -128   # assess/_plan.py: integer codes index code_table at code - CODE_LO
    CODE_SPAN = 384
    # atom kinds and opcodes (assess/_plan.py mirrors these numbers)
    A_OPTION_IN = 0
    A_SUM_AT_LEAST = 1
    A_FLAG = 2
    A_SCORE_BETWEEN = 3
    A_NEVER = 4
    OP_ATOM = 0
    OP_AND = 1
    OP_OR = 2
    OP_COUNT = 3     # argument: n | lo << 20 | hi << 40
    # derived score kinds (assess/_plan.py SCORE_KINDS)
    SK_SUM = 0
    SK_MAX = 1
    SK_MIN = 2
    SK_BANDS = 3
    SK_MATRIX = 4
    SK_CASES = 5
    SK_WEIGHTED = 6
    # row status (assess/_reference.py mirrors these numbers)
    S_OK = 0
    S_NOT_ALLOWED = 1
    S_INCOMPLETE = 2
    S_INCONSISTENT = 3

cdef int32_t NULL_SCORE = -2147483648

cdef extern from *:
    """
    static int assess_cpu_has_avx2(void) {
    /* GCC before 5 knows no "bmi" or "fma" here; MSVC-compatible compilers get no AVX2 build. */
    #if (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 5)) && defined(__x86_64__) && !defined(_MSC_VER)
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
            && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2")
            && __builtin_cpu_supports("popcnt");
    #else
        return 0;
    #endif
    }
    """
    int assess_cpu_has_avx2() noexcept nogil


def cpu_has_avx2():
    """Whether this processor (and its operating system) runs ``assess._kernel_avx2``: AVX2, FMA,
    BMI1/2 and POPCNT. Asked of the baseline build, before the other one is imported."""
    return bool(assess_cpu_has_avx2())

cdef extern from *:
    void __builtin_prefetch(const void* addr, int rw, int locality) nogil
    int count_trailing_zeros "__builtin_ctz" (unsigned int x) nogil

# Bytes per cell of each column kind (K_ABSENT … K_FLOAT32).
cdef int KIND_SIZE[11]
KIND_SIZE[:] = [0, 1, 2, 4, 8, 1, 2, 4, 8, 2, 4]


cdef inline void prefetch_rows(const void* data, int kind, Py_ssize_t r0, Py_ssize_t m) noexcept nogil:
    # Ask for the next chunk of a column while this one is scored: each chunk reads some tens of
    # columns a few cache lines each, too short a run for the hardware prefetcher to pick up.
    cdef Py_ssize_t size = KIND_SIZE[kind], b
    cdef const char* base
    if data == NULL or size == 0:
        return
    base = <const char*>data + r0 * size
    for b in range(0, m * size, 64):
        __builtin_prefetch(base + b, 0, 3)


cdef struct PlanC:
    # Raw pointers into the KernelPlan's arrays, so the loop needs no Python object.
    int n_q, n_items, n_domains, n_scores, n_groups, n_bands, n_atoms, n_rules, n_constraints
    int level_value, raise_sum, max_level, n_values, n_flags, item_values, n_cats, n_skips, n_item_skips, skip_prog0
    const uint8_t* required
    const uint8_t* need_idx
    const int16_t* code_table      # [Q, CODE_SPAN] option index or BAD
    const int32_t* sum_table       # [n_items, CODE_SPAN] (points << 16), or 1 when not allowed
    const int32_t* pack2           # [n_items, MAXOPT + 2] the same by option index + 2 (0: BAD, 1: MISSING)
    int pack2_width
    const int64_t* item_domain
    const int32_t* identity_lo     # [n_items] codes lo … hi with points = code; lo > hi: not so
    const int32_t* identity_hi
    const int64_t* part_start
    const int64_t* parts
    const int32_t* band_min
    const int32_t* band_max
    const int8_t* band_level
    const int8_t* atom_kind
    const int64_t* atom_q
    const uint8_t* atom_option     # [A, option_width] truth by option index + 2
    const uint32_t* atom_bits      # [A] the same as bits (bit i: index i - 2), when option_width <= 32
    const int32_t* index_lo        # [Q] integer codes lo … hi are option indexes 0 … hi - lo, no other
    const int32_t* index_hi        #     code is allowed (lo > hi when not so)
    const uint8_t* value_is_index  # [Q] each option's value is its index (0 for a missing cell)
    const int32_t* opt_value2      # [Q, option_width] option value by option index + 2
    int option_width
    const int32_t* atom_n
    const int32_t* atom_hi
    const int64_t* atom_sum_start
    const int64_t* atom_sum_q
    const int64_t* prog_start
    const int8_t* prog_op
    const int64_t* prog_arg
    const int32_t* rule_raise
    const int8_t* rule_set_level
    const int8_t* fired_set        # [1 << n_rules] level set by the rules in a bit set (-1 none), or NULL
    const int32_t* fired_raise     # [1 << n_rules] what they raise the level by (when none sets it)
    const int64_t* constraint_field
    const int64_t* cat_case_start
    const int8_t* cat_case_value
    const int8_t* cat_otherwise
    const int64_t* skip_item       # [K] question of skip K (program skip_prog0 + K)
    const uint8_t* skip_kind       # [K] 1: item skipped while it holds; 0: field not required while it holds
    const int16_t* skip_of_q       # [Q] K of the question's skip, -1 none
    int score_prog0                # first program of the derived scores' cases
    const int8_t* score_kind       # [S]
    const int64_t* score_aux_start # [S+1] bands (lo, hi, value)…; matrix (lo, span) per axis, then cells
    const int32_t* score_aux
    const int64_t* score_case_start
    const int32_t* score_case_value
    const int32_t* score_otherwise


cdef const void* _ptr(arr) except? NULL:
    """Address of a C-contiguous numpy array's first element (NULL when empty)."""
    if not arr.flags.c_contiguous:
        raise ValueError("plan arrays must be C-contiguous")
    return NULL if arr.size == 0 else <const void*><uintptr_t>arr.ctypes.data


cdef class KernelPlan:
    """An ``assess._plan.Plan`` as a C struct; holds the plan so its arrays stay alive."""
    cdef PlanC c
    cdef readonly object plan
    cdef readonly Py_ssize_t max_program

    def __init__(self, plan):
        if plan.code_lo != CODE_LO or plan.code_table.shape[1] != CODE_SPAN:
            raise ValueError("plan built for another kernel layout")
        self.plan = plan
        n_programs = len(plan.prog_start) - 1
        self.max_program = max([int(plan.prog_start[k + 1] - plan.prog_start[k]) for k in range(n_programs)] + [0])
        c = &self.c
        c.n_q = len(plan.questions)
        c.n_items = plan.n_items
        c.n_domains = plan.n_domains
        c.n_scores = plan.n_scores
        c.n_groups = plan.n_domains + plan.n_scores
        c.n_bands = len(plan.band_min)
        c.n_atoms = len(plan.atom_kind)
        c.n_rules = plan.n_rules
        c.n_constraints = plan.n_constraints
        c.n_cats = len(plan.cat_otherwise)
        c.level_value = plan.level_value
        c.raise_sum = plan.raise_sum
        c.max_level = plan.max_level
        c.n_values = plan.n_items + plan.n_domains + plan.n_scores
        c.n_flags = len(plan.flags)
        c.item_values = plan.item_values
        c.pack2_width = plan.pack2.shape[1] if plan.pack2.ndim == 2 else 0
        c.required = <const uint8_t*>_ptr(plan.required)
        c.need_idx = <const uint8_t*>_ptr(plan.need_idx)
        c.code_table = <const int16_t*>_ptr(plan.code_table)
        c.sum_table = <const int32_t*>_ptr(plan.sum_table)
        c.pack2 = <const int32_t*>_ptr(plan.pack2)
        c.item_domain = <const int64_t*>_ptr(plan.item_domain)
        c.identity_lo = <const int32_t*>_ptr(plan.identity_lo)
        c.identity_hi = <const int32_t*>_ptr(plan.identity_hi)
        c.part_start = <const int64_t*>_ptr(plan.score_part_start)
        c.parts = <const int64_t*>_ptr(plan.score_parts)
        c.band_min = <const int32_t*>_ptr(plan.band_min)
        c.band_max = <const int32_t*>_ptr(plan.band_max)
        c.band_level = <const int8_t*>_ptr(plan.band_level)
        c.atom_kind = <const int8_t*>_ptr(plan.atom_kind)
        c.atom_q = <const int64_t*>_ptr(plan.atom_q)
        c.atom_option = <const uint8_t*>_ptr(plan.atom_option)
        c.atom_bits = <const uint32_t*>_ptr(plan.atom_bits)     # NULL (empty) beyond 32 options
        c.index_lo = <const int32_t*>_ptr(plan.index_lo)
        c.index_hi = <const int32_t*>_ptr(plan.index_hi)
        c.value_is_index = <const uint8_t*>_ptr(plan.value_is_index)
        c.opt_value2 = <const int32_t*>_ptr(plan.opt_value2)
        c.option_width = plan.opt_value2.shape[1]
        c.atom_n = <const int32_t*>_ptr(plan.atom_n)
        c.atom_hi = <const int32_t*>_ptr(plan.atom_hi)
        c.atom_sum_start = <const int64_t*>_ptr(plan.atom_sum_start)
        c.atom_sum_q = <const int64_t*>_ptr(plan.atom_sum_q)
        c.prog_start = <const int64_t*>_ptr(plan.prog_start)
        c.prog_op = <const int8_t*>_ptr(plan.prog_op)
        c.prog_arg = <const int64_t*>_ptr(plan.prog_arg)
        c.rule_raise = <const int32_t*>_ptr(plan.rule_raise)
        c.rule_set_level = <const int8_t*>_ptr(plan.rule_set_level)
        # The effect of every set of rules that hold, looked up by the row's rule bits instead of
        # walking them (a branch per rule that a random mix of rows mispredicts); NULL (empty)
        # beyond _plan.RULE_TABLE_MAX rules.
        c.fired_set = <const int8_t*>_ptr(plan.fired_set)
        c.fired_raise = <const int32_t*>_ptr(plan.fired_raise)
        c.constraint_field = <const int64_t*>_ptr(plan.constraint_field)
        c.cat_case_start = <const int64_t*>_ptr(plan.cat_case_start)
        c.cat_case_value = <const int8_t*>_ptr(plan.cat_case_value)
        c.cat_otherwise = <const int8_t*>_ptr(plan.cat_otherwise)
        c.n_skips = len(plan.skip_item)
        c.skip_prog0 = plan.n_rules + plan.n_constraints + int(plan.cat_case_start[len(plan.cat_case_start) - 1])
        c.skip_item = <const int64_t*>_ptr(plan.skip_item)
        c.skip_kind = <const uint8_t*>_ptr(plan.skip_kind)
        c.n_item_skips = int(plan.skip_kind.sum())
        c.skip_of_q = <const int16_t*>_ptr(plan.skip_of_q)
        c.score_prog0 = c.skip_prog0 + c.n_skips
        c.score_kind = <const int8_t*>_ptr(plan.score_kind)
        c.score_aux_start = <const int64_t*>_ptr(plan.score_aux_start)
        c.score_aux = <const int32_t*>_ptr(plan.score_aux)
        c.score_case_start = <const int64_t*>_ptr(plan.score_case_start)
        c.score_case_value = <const int32_t*>_ptr(plan.score_case_value)
        c.score_otherwise = <const int32_t*>_ptr(plan.score_otherwise)


ctypedef fused code_t:
    int8_t
    int16_t
    int32_t
    int64_t
    uint8_t
    uint16_t
    uint32_t


cdef inline void item_fast(const code_t* data, const int16_t* ctable, const int32_t* stable, Py_ssize_t m,
                           bint need_idx, int16_t* idx, int32_t* acc) noexcept nogil:
    # Integer item column without nulls: add (points << 16), or 1 for a code not allowed.
    cdef Py_ssize_t r
    cdef int64_t off
    for r in range(m):
        off = <int64_t>data[r] - CODE_LO
        acc[r] += stable[off] if <uint64_t>off < <uint64_t>CODE_SPAN else 1
    if need_idx:
        for r in range(m):
            off = <int64_t>data[r] - CODE_LO
            idx[r] = ctable[off] if <uint64_t>off < <uint64_t>CODE_SPAN else BAD


cdef inline void item_identity(const code_t* data, int32_t lo, int32_t hi, Py_ssize_t m, int32_t* acc) noexcept nogil:
    # Items whose allowed integer codes are exactly lo … hi with points equal to the code (the
    # Chinese standards' convention: an option's code is its points value): no table, no branch,
    # so the compiler vectorises it. A code outside lo … hi adds the "not allowed" count 1.
    cdef Py_ssize_t r
    cdef int32_t c, ok
    for r in range(m):
        c = <int32_t>data[r]
        ok = (c >= lo) & (c <= hi)
        # A mask, not a multiply (baseline SSE2 has no 32-bit one); the shift on the bits as unsigned,
        # which keeps a negative code's sign without shifting a negative number.
        acc[r] += (<int32_t>(<uint32_t>c << 16) & -ok) + (1 - ok)


cdef inline void item_identity64(const int64_t* data, int32_t lo, int32_t hi, Py_ssize_t m,
                                 int32_t* acc) noexcept nogil:
    # The same for int64 columns, compared in 64 bits so that no huge value wraps into range. The
    # shift is done on the low 32 bits as unsigned, which keeps a negative code's sign (-1 adds
    # -1 << 16) and cannot overflow for a value out of range (masked off anyway).
    cdef Py_ssize_t r
    cdef int64_t c
    cdef int32_t ok
    for r in range(m):
        c = data[r]
        ok = (c >= lo) & (c <= hi)
        acc[r] += (<int32_t>(<uint32_t>c << 16) & -ok) + (1 - ok)


cdef inline int16_t index_of_int(const int16_t* ctable, int64_t code) noexcept nogil:
    cdef int64_t off = code - CODE_LO
    return ctable[off] if <uint64_t>off < <uint64_t>CODE_SPAN else BAD


cdef inline int16_t index_of_float(const int16_t* ctable, double v) noexcept nogil:
    if isnan(v):
        return MISSING
    if v != floor(v) or v < CODE_LO or v >= CODE_LO + CODE_SPAN:
        return BAD
    return ctable[<int64_t>v - CODE_LO]


cdef inline int16_t decode_one(const PlanC* p, Py_ssize_t q, int kind, const void* data, const uint8_t* valid,
                               int64_t valid_off, Py_ssize_t row) noexcept nogil:
    """Option index (or MISSING / BAD) of one cell."""
    cdef const int16_t* ctable = p.code_table + q * CODE_SPAN
    if kind == K_ABSENT:
        return MISSING
    if valid != NULL and not (valid[(valid_off + row) >> 3] >> ((valid_off + row) & 7)) & 1:
        return MISSING
    if kind == K_INDEX:
        return (<const int16_t*>data)[row]
    if kind == K_INT8:
        return index_of_int(ctable, (<const int8_t*>data)[row])
    if kind == K_INT16:
        return index_of_int(ctable, (<const int16_t*>data)[row])
    if kind == K_INT32:
        return index_of_int(ctable, (<const int32_t*>data)[row])
    if kind == K_INT64:
        return index_of_int(ctable, (<const int64_t*>data)[row])
    if kind == K_UINT8:
        return index_of_int(ctable, (<const uint8_t*>data)[row])
    if kind == K_UINT16:
        return index_of_int(ctable, (<const uint16_t*>data)[row])
    if kind == K_UINT32:
        return index_of_int(ctable, (<const uint32_t*>data)[row])
    if kind == K_FLOAT32:
        return index_of_float(ctable, (<const float*>data)[row])
    return index_of_float(ctable, (<const double*>data)[row])


cdef inline void decode_int_column(const code_t* data, const int16_t* ctable, Py_ssize_t m, int16_t* out) noexcept nogil:
    cdef Py_ssize_t r
    for r in range(m):
        out[r] = index_of_int(ctable, data[r])


cdef inline void decode_byte_column(const code_t* data, const int16_t* ctable, Py_ssize_t m, int16_t* out) noexcept nogil:
    # int8 and uint8 codes all lie in CODE_LO … CODE_LO + CODE_SPAN - 1: no range check.
    cdef Py_ssize_t r
    for r in range(m):
        out[r] = ctable[<int32_t>data[r] - CODE_LO]


cdef inline void decode_byte_identity(const code_t* data, int32_t lo, int32_t hi, Py_ssize_t m, int16_t* out) noexcept nogil:
    # codes lo … hi are indexes 0 … hi - lo; any other code is BAD (index_lo in KernelPlan)
    cdef Py_ssize_t r
    cdef int32_t c
    for r in range(m):
        c = <int32_t>data[r]
        out[r] = <int16_t>(c - lo) if (c >= lo) & (c <= hi) else BAD


cdef void decode(const PlanC* p, Py_ssize_t q, int kind, const void* data, const uint8_t* valid,
                 int64_t valid_off, Py_ssize_t r0, Py_ssize_t m, int16_t* out) noexcept nogil:
    """Option indexes (or MISSING / BAD) of rows r0 … r0+m-1 of one question column."""
    cdef Py_ssize_t r
    cdef const int16_t* ctable = p.code_table + q * CODE_SPAN
    if kind == K_INDEX:
        memcpy(out, (<const int16_t*>data) + r0, m * sizeof(int16_t))
    elif kind == K_INT8 and p.index_lo[q] <= p.index_hi[q]:
        decode_byte_identity((<const int8_t*>data) + r0, p.index_lo[q], p.index_hi[q], m, out)
    elif kind == K_UINT8 and p.index_lo[q] <= p.index_hi[q]:
        decode_byte_identity((<const uint8_t*>data) + r0, p.index_lo[q], p.index_hi[q], m, out)
    elif kind == K_INT8:
        decode_byte_column((<const int8_t*>data) + r0, ctable, m, out)
    elif kind == K_INT16:
        decode_int_column((<const int16_t*>data) + r0, ctable, m, out)
    elif kind == K_INT32:
        decode_int_column((<const int32_t*>data) + r0, ctable, m, out)
    elif kind == K_INT64:
        decode_int_column((<const int64_t*>data) + r0, ctable, m, out)
    elif kind == K_UINT8:
        decode_byte_column((<const uint8_t*>data) + r0, ctable, m, out)
    else:
        for r in range(m):
            out[r] = decode_one(p, q, kind, data, NULL, 0, r0 + r)
    if valid != NULL:
        for r in range(m):
            if not (valid[(valid_off + r0 + r) >> 3] >> ((valid_off + r0 + r) & 7)) & 1:
                out[r] = MISSING


cdef bint item_column_fast(const PlanC* p, Py_ssize_t q, int kind, const void* data, Py_ssize_t r0,
                           Py_ssize_t m, int16_t* idx, int32_t* acc) noexcept nogil:
    """The fast path for an integer item column without nulls; False when it does not apply."""
    cdef const int16_t* ct = p.code_table + q * CODE_SPAN
    cdef const int32_t* st = p.sum_table + q * CODE_SPAN
    cdef bint need = p.need_idx[q]
    cdef int32_t lo = p.identity_lo[q], hi = p.identity_hi[q]
    if lo <= hi and not need:
        if kind == K_INT64:
            item_identity64((<const int64_t*>data) + r0, lo, hi, m, acc)
        elif kind == K_INT8:
            item_identity((<const int8_t*>data) + r0, lo, hi, m, acc)
        elif kind == K_UINT8:
            item_identity((<const uint8_t*>data) + r0, lo, hi, m, acc)
        elif kind == K_INT16:
            item_identity((<const int16_t*>data) + r0, lo, hi, m, acc)
        elif kind == K_INT32:
            item_identity((<const int32_t*>data) + r0, lo, hi, m, acc)
        else:
            return False
        return True
    if kind == K_INT8:
        item_fast((<const int8_t*>data) + r0, ct, st, m, need, idx, acc)
    elif kind == K_UINT8:
        item_fast((<const uint8_t*>data) + r0, ct, st, m, need, idx, acc)
    elif kind == K_INT16:
        item_fast((<const int16_t*>data) + r0, ct, st, m, need, idx, acc)
    elif kind == K_INT32:
        item_fast((<const int32_t*>data) + r0, ct, st, m, need, idx, acc)
    elif kind == K_INT64:
        item_fast((<const int64_t*>data) + r0, ct, st, m, need, idx, acc)
    else:
        return False
    return True


cdef struct Work:
    # Per-call scratch, column-major over one chunk of rows: [slot * CHUNK + r].
    int16_t* idx       # option index per question (only where need_idx, or decoded the slow way)
    uint8_t* have_idx  # per question: idx holds this chunk's indexes
    int16_t* anyneg    # per row: negative when a field is missing (required) or not allowed
    int32_t* acc       # per domain and row: (points << 16) + count of unanswered / not allowed items
    int32_t* val       # value vector: item points, domain scores, derived scores (0 when null)
    uint8_t* vnull     # 1 where the value is null
    uint8_t* atoms     # truth of each atom
    uint8_t* stack     # postfix evaluation stack
    uint32_t* bits     # rules that hold
    uint8_t* skipped   # per skip and row: the item is skipped by its rule
    int16_t* fired_c   # first constraint that holds, -1 none
    uint8_t* problem   # per row: an item or field is not allowed or missing (status to be resolved)
    int32_t* band      # per row: index of the band the level score falls in (when it falls in one)


cdef inline int first_question(const PlanC* p, const Work* w, const uintptr_t* col_ptr, const int8_t* col_kind,
                               const uintptr_t* valid_ptr, const int64_t* valid_off, Py_ssize_t c0, Py_ssize_t r,
                               int16_t state, bint required_only) noexcept nogil:
    """The first question whose answer is in ``state`` (BAD or MISSING) in row c0 + r, or -1."""
    cdef Py_ssize_t q
    cdef int16_t i
    for q in range(p.n_q):
        if required_only:
            if p.n_skips and p.skip_of_q[q] >= 0:
                if w.skipped[p.skip_of_q[q] * CHUNK + r]:
                    continue   # a skipped item, or a field its condition makes unnecessary
            elif not p.required[q]:
                continue
        if w.have_idx[q]:
            i = w.idx[q * CHUNK + r]
        else:
            i = decode_one(p, q, col_kind[q], <const void*>col_ptr[q], <const uint8_t*>valid_ptr[q],
                           valid_off[q], c0 + r)
        if i == state:
            return <int>q
    return -1


cdef void eval_atoms(const PlanC* p, Work* w, const uint8_t** flags, Py_ssize_t r0, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t a, r, k
    cdef int64_t q
    cdef int32_t n, hi
    cdef uint8_t* out
    cdef const uint8_t* truth
    cdef const int16_t* col
    cdef const int32_t* vals
    cdef const uint8_t* vn
    cdef int32_t* sums
    cdef uint32_t bits
    for a in range(p.n_atoms):
        out = w.atoms + a * CHUNK
        if p.atom_kind[a] == A_OPTION_IN:
            # truth by option index; the table starts 2 before index 0, so BAD and MISSING read false
            col = w.idx + p.atom_q[a] * CHUNK
            if p.atom_bits != NULL:   # a shift per row, which vectorises, instead of a table load
                bits = p.atom_bits[a]
                for r in range(m):
                    out[r] = (bits >> <uint32_t>(col[r] + 2)) & 1
                continue
            truth = p.atom_option + a * p.option_width + 2
            for r in range(m):
                out[r] = truth[col[r]]
        elif p.atom_kind[a] == A_SCORE_BETWEEN:
            # a domain or derived score (never null-true): the value vector is filled by now
            vals = w.val + p.atom_q[a] * CHUNK
            vn = w.vnull + p.atom_q[a] * CHUNK
            n = p.atom_n[a]
            hi = p.atom_hi[a]
            for r in range(m):
                out[r] = (vn[r] == 0) & (vals[r] >= n) & (vals[r] <= hi)
        elif p.atom_kind[a] == A_NEVER:
            memset(out, 0, m)
        elif p.atom_kind[a] == A_SUM_AT_LEAST:
            # Sum of the values given (missing ones add nothing: the table's columns 0 and 1 are 0),
            # compared with the threshold.
            sums = <int32_t*>w.stack
            memset(sums, 0, m * sizeof(int32_t))
            for k in range(p.atom_sum_start[a], p.atom_sum_start[a + 1]):
                q = p.atom_sum_q[k]
                col = w.idx + q * CHUNK
                if p.value_is_index[q]:   # no table load: the index itself, 0 when missing or bad
                    for r in range(m):
                        sums[r] += col[r] if col[r] > 0 else 0
                    continue
                vals = p.opt_value2 + q * p.option_width + 2
                for r in range(m):
                    sums[r] += vals[col[r]]
            n = p.atom_n[a]
            for r in range(m):
                out[r] = sums[r] >= n
        else:
            for r in range(m):
                out[r] = flags[p.atom_q[a]][r0 + r] != 0


cdef void eval_program(const PlanC* p, Work* w, Py_ssize_t k, Py_ssize_t m, uint8_t* result) noexcept nogil:
    """Evaluate postfix program k over a chunk, leaving its truth per row in result."""
    cdef Py_ssize_t top = 0, j, n, t, r
    cdef uint8_t* dst
    cdef const uint8_t* src
    cdef uint8_t lo, hi
    for j in range(p.prog_start[k], p.prog_start[k + 1]):
        if p.prog_op[j] == OP_ATOM:
            memcpy(w.stack + top * CHUNK, w.atoms + p.prog_arg[j] * CHUNK, m)
            top += 1
        elif p.prog_op[j] == OP_COUNT:
            n = p.prog_arg[j] & 0xFFFFF
            lo = (p.prog_arg[j] >> 20) & 0xFFFFF
            hi = (p.prog_arg[j] >> 40) & 0xFFFFF
            dst = w.stack + (top - n) * CHUNK
            for t in range(top - n + 1, top):
                src = w.stack + t * CHUNK
                for r in range(m):
                    dst[r] += src[r]
            for r in range(m):
                dst[r] = (dst[r] >= lo) & (dst[r] <= hi)
            top -= n - 1
        else:
            n = p.prog_arg[j]
            dst = w.stack + (top - n) * CHUNK
            for t in range(top - n + 1, top):
                src = w.stack + t * CHUNK
                if p.prog_op[j] == OP_AND:
                    for r in range(m):
                        dst[r] &= src[r]
                else:
                    for r in range(m):
                        dst[r] |= src[r]
            top -= n - 1
    memcpy(result, w.stack, m)



cdef void derived_score(const PlanC* p, Work* w, Py_ssize_t k, Py_ssize_t s, Py_ssize_t m, int32_t* v,
                        uint8_t* vn, const uint8_t** flags, Py_ssize_t c0, uint8_t* truth) noexcept nogil:
    """Derived score s (group k) over a chunk, from its parts in the value vector (assess/derived.py)."""
    cdef Py_ssize_t j, r, b, nb, a, naxes
    cdef int kind = p.score_kind[s]
    cdef const int32_t* pv
    cdef const uint8_t* pn
    cdef const int32_t* aux = p.score_aux + p.score_aux_start[s]
    cdef const int32_t* cells
    cdef const int16_t* col
    cdef int32_t x, cell, span
    cdef int64_t idx
    cdef uint8_t null
    if kind == SK_CASES:
        # The first case that holds; its conditions may read items, fields and earlier scores.
        eval_atoms(p, w, flags, c0, m)
        memset(v, 0, m * sizeof(int32_t))
        memset(vn, 1, m)
        for j in range(p.score_case_start[s], p.score_case_start[s + 1]):
            eval_program(p, w, p.score_prog0 + j, m, truth)
            for r in range(m):
                if truth[r] and vn[r]:
                    v[r] = p.score_case_value[j]
                    vn[r] = 0
        if p.score_otherwise[s] != NULL_SCORE:
            for r in range(m):
                if vn[r]:
                    v[r] = p.score_otherwise[s]
                    vn[r] = 0
        return
    if kind == SK_WEIGHTED:
        # sum of weight × part; a part is a value slot (source 0) or a field's option value (source 1)
        memset(v, 0, m * sizeof(int32_t))
        memset(vn, 0, m)
        nb = (p.score_aux_start[s + 1] - p.score_aux_start[s]) // 3
        for b in range(nb):
            x = aux[3 * b + 2]
            if aux[3 * b] == 0:
                pv = w.val + aux[3 * b + 1] * CHUNK
                pn = w.vnull + aux[3 * b + 1] * CHUNK
                for r in range(m):
                    v[r] += x * pv[r]
                    vn[r] |= pn[r]
            else:
                col = w.idx + aux[3 * b + 1] * CHUNK
                pv = p.opt_value2 + aux[3 * b + 1] * p.option_width + 2   # 0 for a missing cell, made null
                for r in range(m):
                    vn[r] |= col[r] < 0
                    v[r] += x * pv[col[r]]
        for r in range(m):
            if vn[r]:
                v[r] = 0
        return
    j = p.part_start[k]
    pv = w.val + p.parts[j] * CHUNK
    pn = w.vnull + p.parts[j] * CHUNK
    if kind == SK_BANDS:
        nb = (p.score_aux_start[s + 1] - p.score_aux_start[s]) // 3
        for r in range(m):
            x = pv[r]
            v[r] = 0
            vn[r] = 1
            if not pn[r]:
                for b in range(nb):
                    if aux[3 * b] <= x <= aux[3 * b + 1]:
                        v[r] = aux[3 * b + 2]
                        vn[r] = 0
                        break
        return
    if kind == SK_MATRIX:
        naxes = p.part_start[k + 1] - p.part_start[k]
        cells = aux + 2 * naxes
        for r in range(m):
            idx = 0
            null = 0
            for a in range(naxes):
                x = w.val[p.parts[j + a] * CHUNK + r] - aux[2 * a]
                span = aux[2 * a + 1]
                null |= w.vnull[p.parts[j + a] * CHUNK + r] | (x < 0) | (x >= span)
                idx = idx * span + x
            cell = NULL_SCORE if null else cells[idx]
            vn[r] = cell == NULL_SCORE
            v[r] = 0 if vn[r] else cell
        return
    # sum, max, min: the first part, then each further one (null when any part is null)
    memcpy(v, pv, m * sizeof(int32_t))
    memcpy(vn, pn, m)
    for j in range(p.part_start[k] + 1, p.part_start[k + 1]):
        pv = w.val + p.parts[j] * CHUNK
        pn = w.vnull + p.parts[j] * CHUNK
        if kind == SK_SUM:
            for r in range(m):
                v[r] += pv[r]
                vn[r] |= pn[r]
        elif kind == SK_MAX:
            for r in range(m):
                v[r] = pv[r] if pv[r] > v[r] else v[r]
                vn[r] |= pn[r]
        else:
            for r in range(m):
                v[r] = pv[r] if pv[r] < v[r] else v[r]
                vn[r] |= pn[r]


cdef void score_range(const PlanC* p, const uintptr_t* col_ptr, const int8_t* col_kind,
                      const uintptr_t* valid_ptr, const int64_t* valid_off, const uint8_t** flags,
                      int32_t* domains, int32_t* scores, int8_t* level_initial, int8_t* level,
                      uint32_t* rules, uint8_t* status, int16_t* error_field, int8_t* cats,
                      Py_ssize_t n, Py_ssize_t start, Py_ssize_t stop, Work* w, uint8_t* truth) noexcept nogil:
    # domains, scores and cats are column-major ([column * n + row]): each output column is one
    # contiguous array that Arrow takes without copying.
    cdef Py_ssize_t c0, m, q, r, row, k, j, b
    cdef int16_t i
    cdef int16_t* col
    cdef int16_t* anyneg = w.anyneg
    cdef int32_t* acc
    cdef int32_t* v
    cdef uint8_t* vn
    cdef const int32_t* pv
    cdef const uint8_t* pn
    cdef const int32_t* pk
    cdef int32_t a
    cdef bint req
    cdef int bad_q, miss_q, st, err, lvl, up, setter
    cdef int32_t total
    cdef uint32_t bits
    cdef uint8_t* sk
    c0 = start
    while c0 < stop:
        m = min(CHUNK, stop - c0)
        # 1. Items: points into their domain's accumulator, read once per cell.
        memset(anyneg, 0, m * sizeof(int16_t))
        memset(w.acc, 0, p.n_domains * CHUNK * sizeof(int32_t))
        for q in range(p.n_q):
            col = w.idx + q * CHUNK
            w.have_idx[q] = p.need_idx[q]
            if c0 + m < stop:
                prefetch_rows(<const void*>col_ptr[q], col_kind[q], c0 + m, min(CHUNK, stop - c0 - m))
            if q < p.n_items:
                acc = w.acc + p.item_domain[q] * CHUNK
                if valid_ptr[q] == 0 and item_column_fast(p, q, col_kind[q], <const void*>col_ptr[q], c0, m,
                                                          col, acc):
                    continue
                decode(p, q, col_kind[q], <const void*>col_ptr[q], <const uint8_t*>valid_ptr[q], valid_off[q],
                       c0, m, col)
                w.have_idx[q] = 1
                pk = p.pack2 + q * p.pack2_width          # by option index + 2
                for r in range(m):
                    acc[r] += pk[col[r] + 2]
            else:
                # 2. Fields (rule inputs): option indexes; mark rows with a problem.
                decode(p, q, col_kind[q], <const void*>col_ptr[q], <const uint8_t*>valid_ptr[q], valid_off[q],
                       c0, m, col)
                w.have_idx[q] = 1
                req = p.required[q]
                for r in range(m):
                    i = col[r]
                    # required: any negative index; optional: only BAD (-2), as (-2 + 1) >> 15 == -1
                    anyneg[r] |= i if req else (i + 1) >> 15
        # 2b. Skips (only instruments that define them; their rules read fields only): a skipped item
        #     counts 0 and is not required, so its cell's contribution is taken back out of the
        #     accumulator; a code not allowed still makes the row not allowed.
        if p.n_item_skips:
            eval_atoms(p, w, flags, c0, m)
            for k in range(p.n_skips):
                if not p.skip_kind[k]:
                    continue
                sk = w.skipped + k * CHUNK
                eval_program(p, w, p.skip_prog0 + k, m, sk)
                q = p.skip_item[k]
                col = w.idx + q * CHUNK
                acc = w.acc + p.item_domain[q] * CHUNK
                pk = p.pack2 + q * p.pack2_width
                for r in range(m):
                    if sk[r]:
                        acc[r] -= pk[col[r] + 2]
                        if col[r] == BAD:
                            anyneg[r] = -1
        # 3. Domain scores, then derived scores (null when any part is null).
        for k in range(p.n_domains):
            acc = w.acc + k * CHUNK
            v = w.val + (p.n_items + k) * CHUNK
            vn = w.vnull + (p.n_items + k) * CHUNK
            for r in range(m):
                a = acc[r]
                vn[r] = (a & 0xFFFF) != 0
                v[r] = 0 if vn[r] else a >> 16
                domains[k * n + c0 + r] = NULL_SCORE if vn[r] else v[r]
        if p.item_values:
            for q in range(p.n_items):
                col = w.idx + q * CHUNK
                pk = p.pack2 + q * p.pack2_width
                v = w.val + q * CHUNK
                vn = w.vnull + q * CHUNK
                for r in range(m):
                    v[r] = pk[col[r] + 2] >> 16
                    vn[r] = col[r] < 0
                if p.n_skips and p.skip_of_q[q] >= 0:   # a skipped item adds 0 and is never null
                    sk = w.skipped + p.skip_of_q[q] * CHUNK
                    for r in range(m):
                        if sk[r]:
                            v[r] = 0
                            vn[r] = 0
        for k in range(p.n_domains, p.n_groups):
            v = w.val + (p.n_items + k) * CHUNK
            vn = w.vnull + (p.n_items + k) * CHUNK
            derived_score(p, w, k, k - p.n_domains, m, v, vn, flags, c0, truth)
            for r in range(m):
                scores[(k - p.n_domains) * n + c0 + r] = NULL_SCORE if vn[r] else v[r]
        # 4. Rules and constraints.
        eval_atoms(p, w, flags, c0, m)
        for r in range(m):
            w.bits[r] = 0
            w.fired_c[r] = -1
        for k in range(p.n_rules):
            eval_program(p, w, k, m, truth)
            for r in range(m):
                w.bits[r] |= (<uint32_t>truth[r]) << k
        # Fields required unless a condition holds (GB/T A.5.11 when B.3.9 decides coma): optional
        # in step 2, a gap here while the condition does not hold.
        for k in range(p.n_skips):
            if p.skip_kind[k]:
                continue
            sk = w.skipped + k * CHUNK
            eval_program(p, w, p.skip_prog0 + k, m, sk)
            col = w.idx + p.skip_item[k] * CHUNK
            for r in range(m):
                if not sk[r] and col[r] == MISSING:
                    anyneg[r] = -1
        for k in range(p.n_constraints - 1, -1, -1):   # backwards, so the first that holds wins
            eval_program(p, w, p.n_rules + k, m, truth)
            for r in range(m):
                if truth[r]:
                    w.fired_c[r] = k
        # 5. Status (not allowed > inconsistent > incomplete > ok), then levels for ok rows.
        #    Column passes first (which rows have a problem, which band each total falls in), so the
        #    per-row pass is a few loads for the usual row and the question search only for the rare one.
        v = w.val + p.level_value * CHUNK
        vn = w.vnull + p.level_value * CHUNK
        for r in range(m):
            w.problem[r] = anyneg[r] < 0
        for k in range(p.n_domains):
            acc = w.acc + k * CHUNK
            for r in range(m):
                w.problem[r] |= (acc[r] & 0xFFFF) != 0
        # Bands are sorted by min, contiguous and cover every reachable total (checked on load):
        # the band is the last one whose min is <= total.
        memset(w.band, 0, m * sizeof(int32_t))
        for j in range(1, p.n_bands):
            a = p.band_min[j]
            for r in range(m):
                w.band[r] += a <= v[r]
        for r in range(m):
            row = c0 + r
            bits = w.bits[r]
            rules[row] = bits
            st, err = S_OK, -1
            if w.problem[r] or w.fired_c[r] >= 0:
                bad_q = miss_q = -1
                if w.problem[r]:
                    bad_q = first_question(p, w, col_ptr, col_kind, valid_ptr, valid_off, c0, r, BAD, False)
                    if bad_q < 0:
                        miss_q = first_question(p, w, col_ptr, col_kind, valid_ptr, valid_off, c0, r, MISSING, True)
                if bad_q >= 0:
                    st, err = S_NOT_ALLOWED, bad_q
                elif w.fired_c[r] >= 0:
                    st, err = S_INCONSISTENT, <int>p.constraint_field[w.fired_c[r]]
                elif miss_q >= 0:
                    st, err = S_INCOMPLETE, miss_q
            status[row] = st
            error_field[row] = err
            level_initial[row] = -1
            level[row] = -1
            if st != S_OK or vn[r] or p.n_bands == 0:   # no bands: every total unclassified (e.g. Lawton)
                continue
            total = v[r]
            b = w.band[r]
            if not p.band_min[b] <= total <= p.band_max[b]:
                continue
            lvl = p.band_level[b]
            level_initial[row] = lvl
            if p.fired_set != NULL:
                setter = p.fired_set[bits]
                up = min(p.max_level, lvl + p.fired_raise[bits])
                level[row] = setter if setter >= 0 else up
                continue
            setter = -1
            up = 0
            while bits:   # the rules that hold, lowest first
                k = count_trailing_zeros(bits)
                bits &= bits - 1
                if p.rule_set_level[k] >= 0:
                    if setter < 0:
                        setter = p.rule_set_level[k]
                elif p.raise_sum:
                    up += p.rule_raise[k]
                elif p.rule_raise[k] > up:
                    up = p.rule_raise[k]
            level[row] = setter if setter >= 0 else min(p.max_level, lvl + up)
        # 6. Categories (only instruments that define them): first case that holds, for ok rows.
        for k in range(p.n_cats):
            for r in range(m):
                cats[k * n + c0 + r] = -1
            for j in range(p.cat_case_start[k], p.cat_case_start[k + 1]):
                eval_program(p, w, p.n_rules + p.n_constraints + j, m, truth)
                for r in range(m):
                    if truth[r] and status[c0 + r] == S_OK and cats[k * n + c0 + r] < 0:
                        cats[k * n + c0 + r] = p.cat_case_value[j]
            if p.cat_otherwise[k] >= 0:
                for r in range(m):
                    if status[c0 + r] == S_OK and cats[k * n + c0 + r] < 0:
                        cats[k * n + c0 + r] = p.cat_otherwise[k]
        c0 += m


def score_rows(KernelPlan plan, const uint64_t[::1] col_ptr, const int8_t[::1] col_kind,
               const uint64_t[::1] valid_ptr, const int64_t[::1] valid_off, const uint64_t[::1] flag_ptr,
               int32_t[:, ::1] domains, int32_t[:, ::1] scores, int8_t[::1] level_initial, int8_t[::1] level,
               uint32_t[::1] rules, uint8_t[::1] status, int16_t[::1] error_field, int8_t[:, ::1] categories,
               Py_ssize_t start, Py_ssize_t stop):
    """Score rows start … stop-1 into the output arrays, without the GIL.

    Column q is described by a data pointer, a kind (dtype), and an Arrow validity bitmap pointer
    (0 for none) with its bit offset; the caller keeps the buffers alive. Returns the number of
    rows whose status is not ok.
    """
    cdef const PlanC* p = &plan.c
    cdef Py_ssize_t n = status.shape[0]
    if p.n_q != col_ptr.shape[0] or p.n_flags > flag_ptr.shape[0] or not (0 <= start <= stop <= n):
        raise ValueError("columns or row range do not match the plan")
    # Column-major outputs: one row of the (columns, n) array per output column.
    if domains.shape[1] != n or scores.shape[1] != n or domains.shape[0] != p.n_domains \
            or scores.shape[0] != p.n_scores or categories.shape[1] != n or categories.shape[0] != p.n_cats:
        raise ValueError("output arrays do not match the plan")
    cdef Work w
    cdef Py_ssize_t depth = max(plan.max_program, 1) + 4   # the stack also holds one int32 row of sums
    w.idx = <int16_t*>malloc(sizeof(int16_t) * CHUNK * max(p.n_q, 1))
    w.have_idx = <uint8_t*>malloc(max(p.n_q, 1))
    w.anyneg = <int16_t*>malloc(sizeof(int16_t) * CHUNK)
    w.acc = <int32_t*>malloc(sizeof(int32_t) * CHUNK * max(p.n_domains, 1))
    w.val = <int32_t*>malloc(sizeof(int32_t) * CHUNK * max(p.n_values, 1))
    w.vnull = <uint8_t*>malloc(CHUNK * max(p.n_values, 1))
    w.atoms = <uint8_t*>malloc(CHUNK * max(p.n_atoms, 1))
    w.stack = <uint8_t*>malloc(CHUNK * depth)
    w.bits = <uint32_t*>malloc(sizeof(uint32_t) * CHUNK)
    w.fired_c = <int16_t*>malloc(sizeof(int16_t) * CHUNK)
    w.skipped = <uint8_t*>malloc(CHUNK * max(p.n_skips, 1))
    w.problem = <uint8_t*>malloc(CHUNK)
    w.band = <int32_t*>malloc(sizeof(int32_t) * CHUNK)
    cdef uint8_t* truth = <uint8_t*>malloc(CHUNK)
    cdef const uint8_t** flags = <const uint8_t**>malloc(sizeof(uint8_t*) * max(p.n_flags, 1))
    cdef Py_ssize_t k, bad = 0
    try:
        if (w.idx == NULL or w.have_idx == NULL or w.anyneg == NULL or w.acc == NULL or w.val == NULL
                or w.vnull == NULL or w.atoms == NULL or w.stack == NULL or w.bits == NULL
                or w.fired_c == NULL or w.skipped == NULL or w.problem == NULL or w.band == NULL
                or truth == NULL or flags == NULL):
            raise MemoryError()
        # Skips evaluate atoms before the chunk's scores exist: no score atom reads them (checked on
        # load), but the memory is defined all the same.
        memset(w.val, 0, sizeof(int32_t) * CHUNK * max(p.n_values, 1))
        memset(w.vnull, 0, CHUNK * max(p.n_values, 1))
        memset(w.skipped, 0, CHUNK * max(p.n_skips, 1))
        for k in range(p.n_flags):
            flags[k] = <const uint8_t*><uintptr_t>flag_ptr[k]
        # Empty output views have no element to take the address of.
        if stop > start:
            with nogil:
                score_range(p, <const uintptr_t*>&col_ptr[0], &col_kind[0], <const uintptr_t*>&valid_ptr[0],
                            &valid_off[0], flags,
                            &domains[0, 0] if domains.shape[0] else <int32_t*>NULL,
                            &scores[0, 0] if scores.shape[0] else <int32_t*>NULL,
                            &level_initial[0], &level[0], &rules[0], &status[0], &error_field[0],
                            &categories[0, 0] if categories.shape[0] else <int8_t*>NULL,
                            n, start, stop, &w, truth)
                for k in range(start, stop):
                    bad += status[k] != S_OK
    finally:
        free(w.idx); free(w.have_idx); free(w.anyneg); free(w.acc); free(w.val); free(w.vnull)
        free(w.atoms); free(w.stack); free(w.bits); free(w.fired_c); free(w.skipped); free(w.problem); free(w.band); free(truth); free(flags)
    return bad


# --------------------------------------------------------------------------- ICD-10 diagnosis cells
# The grammar of assess/icd10.py, by hand: cells are split on separator characters; each piece
# must be a code (ASCII letter, two digits, optional "." and 1-8 ASCII letters or digits, optional
# "*", "+" or "†"). A cell of white space only (Python's str.isspace) is blank.

cdef inline uint32_t next_cp(const uint8_t* s, Py_ssize_t end, Py_ssize_t* pos) noexcept nogil:
    """Decode one UTF-8 code point at s[pos] and advance pos (Arrow strings are valid UTF-8)."""
    cdef uint8_t c = s[pos[0]]
    cdef uint32_t cp
    cdef int n, k
    if c < 0x80:
        pos[0] += 1
        return c
    if c >> 5 == 0x6:
        cp, n = c & 0x1F, 1
    elif c >> 4 == 0xE:
        cp, n = c & 0x0F, 2
    else:
        cp, n = c & 0x07, 3
    pos[0] += 1
    for k in range(n):
        if pos[0] >= end:
            break
        cp = (cp << 6) | (s[pos[0]] & 0x3F)
        pos[0] += 1
    return cp


cdef uint8_t ASCII_SPACE[128]
cdef uint8_t ASCII_SEP[128]
for _c in range(128):
    ASCII_SPACE[_c] = (0x09 <= _c <= 0x0D) or (0x1C <= _c <= 0x20)
    ASCII_SEP[_c] = _c in (0x3B, 0x2C, 0x20) or (0x09 <= _c <= 0x0D)


cdef inline bint py_space(uint32_t cp) noexcept nogil:
    # Exactly the code points for which Python's str.isspace() is true.
    if cp < 128:
        return ASCII_SPACE[cp]
    return ((0x09 <= cp <= 0x0D) or (0x1C <= cp <= 0x20) or cp == 0x85 or cp == 0xA0 or cp == 0x1680
            or (0x2000 <= cp <= 0x200A) or cp == 0x2028 or cp == 0x2029 or cp == 0x202F or cp == 0x205F
            or cp == 0x3000)


cdef inline bint separator(uint32_t cp) noexcept nogil:
    # assess.icd10.SEPARATORS
    if cp < 128:
        return ASCII_SEP[cp]
    return (cp == 0x3B or cp == 0x2C or cp == 0xFF1B or cp == 0xFF0C or cp == 0x3001 or cp == 0x20
            or (0x09 <= cp <= 0x0D) or cp == 0x3000 or cp == 0xA0)


cdef enum:
    C_SEP = 1
    C_SPACE = 2

cdef uint8_t ASCII_CLASS[128]
for _c in range(128):
    ASCII_CLASS[_c] = (C_SEP if ASCII_SEP[_c] else 0) | (C_SPACE if ASCII_SPACE[_c] else 0)


cdef inline int char_class(const uint8_t* s, Py_ssize_t end, Py_ssize_t* pos) noexcept nogil:
    """C_SEP and/or C_SPACE of the character at pos; advances pos past it."""
    cdef uint8_t c = s[pos[0]]
    cdef uint32_t cp
    if c < 0x80:
        pos[0] += 1
        return ASCII_CLASS[c]
    cp = next_cp(s, end, pos)
    return (C_SEP if separator(cp) else 0) | (C_SPACE if py_space(cp) else 0)


cdef inline bint ascii_alnum(uint8_t c) noexcept nogil:
    return (0x30 <= c <= 0x39) or (0x41 <= c <= 0x5A) or (0x61 <= c <= 0x7A)


cdef inline int code_category(const uint8_t* t, Py_ssize_t n) noexcept nogil:
    """Category number (letter index * 100 + number) of a well-formed code, or -1."""
    cdef Py_ssize_t i = 3, k = 0
    cdef bint dot = False
    cdef uint8_t letter
    if n < 3 or not ((0x41 <= t[0] <= 0x5A) or (0x61 <= t[0] <= 0x7A)):
        return -1
    if not (0x30 <= t[1] <= 0x39 and 0x30 <= t[2] <= 0x39):
        return -1
    if i < n and t[i] == 0x2E:
        dot = True
        i += 1
    while i < n and ascii_alnum(t[i]):
        i += 1
        k += 1
    if k > 8 or (dot and k == 0):
        return -1
    if i < n and (t[i] == 0x2A or t[i] == 0x2B):
        i += 1
    elif i + 2 < n and t[i] == 0xE2 and t[i + 1] == 0x80 and t[i + 2] == 0xA0:   # † U+2020
        i += 3
    if i != n:
        return -1
    letter = t[0] & 0xDF   # upper case
    return (letter - 0x41) * 100 + (t[1] - 0x30) * 10 + (t[2] - 0x30)


cdef int16_t read_cell(const uint8_t* s, Py_ssize_t pos, Py_ssize_t end, bint required,
                       const uint8_t* categories, Py_ssize_t n_flags, uint8_t* hit) noexcept nogil:
    """State of one diagnosis cell s[pos:end] (0 read, MISSING, BAD); hit[f] (zeroed by the caller)
    becomes 1 when a code of the cell falls in category table f, and stays 0 for a blank or bad cell.
    One pass: separators split tokens, each token must be a code; the cell is blank when every
    character is white space (then no token counts)."""
    cdef Py_ssize_t tok, f
    cdef int cls, cat
    cdef bint only_space = True, token_space, bad = False
    while pos < end:
        tok = pos
        cls = char_class(s, end, &pos)
        if cls & C_SEP:
            if not cls & C_SPACE:
                only_space = False
            continue
        token_space = cls & C_SPACE
        while pos < end:        # the token runs to the next separator
            f = pos
            cls = char_class(s, end, &pos)
            if cls & C_SEP:
                pos = f
                break
            token_space = token_space and cls & C_SPACE
        if not token_space:
            only_space = False
        cat = code_category(s + tok, pos - tok)
        if cat < 0:
            bad = True
            if not only_space:
                break
        else:
            for f in range(n_flags):
                hit[f] |= categories[f * 2600 + cat]
    if bad or only_space:
        for f in range(n_flags):
            hit[f] = 0
    if only_space:
        return MISSING if required else 0
    return BAD if bad else 0


# Diagnosis cells repeat (a county's file holds a few hundred distinct ones), and reading one is
# branchy work whose branches a random mix of cells defeats. So the result of each cell of up to
# 16 bytes is kept in a direct-mapped table keyed by its bytes: a repeated cell costs two loads,
# a hash and a compare. The table only remembers what read_cell returned for the same bytes.
cdef enum:
    MEMO_BITS = 12
    MEMO_KEY = 16       # cells longer than this are read every time

cdef struct MemoEntry:
    uint64_t k0
    uint64_t k1
    int32_t length      # -1: empty slot
    int16_t state
    uint64_t bits       # hit[f] as bit f (the table is used only for up to 64 flags)

# The key is the cell's bytes loaded as two words and masked to its length, which keeps the
# cell's own bytes only where the first byte is the lowest: on a big-endian machine there is no memo.
cdef bint LITTLE_ENDIAN = sys.byteorder == "little"
cdef uint64_t KEY_MASK[MEMO_KEY + 1][2]
for _n in range(MEMO_KEY + 1):
    KEY_MASK[_n][0] = (1 << (8 * min(_n, 8))) - 1
    KEY_MASK[_n][1] = (1 << (8 * max(_n - 8, 0))) - 1


cdef inline uint64_t load64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)       # an unaligned load; compilers emit one instruction
    return v


def icd10_cells(const uint8_t[::1] data, offsets, const uint8_t[::1] valid, Py_ssize_t valid_off,
                Py_ssize_t n, bint required, const uint8_t[:, ::1] categories,
                int16_t[::1] state, uint8_t[:, ::1] flags, Py_ssize_t start=0, Py_ssize_t stop=-1):
    """Read ICD-10 cells start … stop-1 (default all n) of an Arrow string array (int32 offsets;
    validity may be empty), without the GIL, so that threads can share the rows.

    state: 0 read (possibly no codes), MISSING (blank, only when required), BAD (a malformed code).
    flags[f, row]: 1 when a code of the row falls in category table f (26 letters x 100 numbers).
    """
    cdef const int32_t[::1] off = offsets
    cdef Py_ssize_t row, pos, end, length, f, n_flags = categories.shape[0], size = data.shape[0]
    cdef bint has_valid = valid.shape[0] > 0, memo_on = n_flags <= 64 and LITTLE_ENDIAN
    cdef const uint8_t* s = &data[0] if data.shape[0] else NULL
    cdef const uint8_t* cats = &categories[0, 0] if n_flags else NULL
    cdef uint8_t* hit
    cdef MemoEntry* memo
    cdef MemoEntry* e
    cdef uint64_t k0 = 0, k1 = 0, bits
    cdef int16_t st
    if off.shape[0] < n + 1 or state.shape[0] < n or flags.shape[1] < n or flags.shape[0] != n_flags \
            or categories.shape[1] != 2600:
        raise ValueError("ICD-10 buffers do not match")
    if stop < 0:
        stop = n
    if not 0 <= start <= stop <= n:
        raise ValueError("row range outside the column")
    hit = <uint8_t*>malloc(max(n_flags, 1))
    memo = <MemoEntry*>malloc(sizeof(MemoEntry) << MEMO_BITS)
    if hit == NULL or memo == NULL:
        free(hit)
        free(memo)
        raise MemoryError()
    with nogil:
        for f in range(1 << MEMO_BITS):
            memo[f].length = -1
        for row in range(start, stop):
            if has_valid and not (valid[(valid_off + row) >> 3] >> ((valid_off + row) & 7)) & 1:
                state[row] = MISSING if required else 0
                for f in range(n_flags):
                    flags[f, row] = 0
                continue
            pos = off[row]
            end = off[row + 1]
            length = end - pos
            e = NULL
            if memo_on and length <= MEMO_KEY and pos + MEMO_KEY <= size:   # 16 bytes readable
                k0 = load64(s + pos) & KEY_MASK[length][0]
                k1 = load64(s + pos + 8) & KEY_MASK[length][1]
                e = &memo[((k0 ^ (k1 * <uint64_t>0x9E3779B97F4A7C15ULL) ^ <uint64_t>length)
                           * <uint64_t>0xD6E8FEB86659FD93ULL) >> (64 - MEMO_BITS)]
                if e.length == length and e.k0 == k0 and e.k1 == k1:
                    state[row] = e.state
                    bits = e.bits
                    for f in range(n_flags):
                        flags[f, row] = (bits >> f) & 1
                    continue
            memset(hit, 0, n_flags)
            st = read_cell(s, pos, end, required, cats, n_flags, hit)
            state[row] = st
            for f in range(n_flags):
                flags[f, row] = hit[f]
            if e != NULL:      # (then n_flags <= 64)
                bits = 0
                for f in range(n_flags):
                    bits |= (<uint64_t>hit[f]) << f
                e.k0, e.k1, e.length, e.state, e.bits = k0, k1, <int32_t>length, st, bits
    free(hit)
    free(memo)


def rule_bits(const uint32_t[::1] rules, uint8_t[:, ::1] out, Py_ssize_t start, Py_ssize_t stop):
    """Bit k of rules[start:stop] as Arrow's packed booleans: bit r % 8 of byte r // 8 of out[k].
    start must be a multiple of 8, so that threads given adjacent row ranges write separate bytes.
    Done here, on the threads that scored the rows, rather than by pyarrow after them on one."""
    cdef Py_ssize_t n_rules = out.shape[0], k, j, i, full
    cdef uint8_t b
    if start % 8 or not 0 <= start <= stop <= rules.shape[0] or out.shape[1] * 8 < stop:
        raise ValueError("row range or bit buffer do not match")
    full = stop // 8
    with nogil:
        for k in range(n_rules):
            for j in range(start // 8, full):
                b = 0
                for i in range(8):
                    b |= ((rules[8 * j + i] >> k) & 1) << i
                out[k, j] = b
            if stop % 8:
                b = 0
                for i in range(stop % 8):
                    b |= ((rules[8 * full + i] >> k) & 1) << i
                out[k, full] = b


cdef enum:
    SLOW_CELL = -3      # text_codes: a byte outside printable ASCII, judged by pyarrow's functions


def text_codes(const uint8_t[::1] data, const int32_t[::1] offsets, const uint8_t[::1] valid, Py_ssize_t valid_off,
               const uint8_t[::1] keys, const int32_t[::1] key_offsets, int16_t[::1] out):
    """Option indexes of a text answer column (an Arrow string array: data, int32 offsets already
    shifted to the array's offset, validity bitmap or empty): the index of the first key equal to
    the cell without the spaces around it, MISSING for a null or blank cell, BAD for any other.
    A cell with a byte outside printable ASCII gets SLOW_CELL (-3): its white space is Unicode's,
    which pyarrow's trim knows. Returns the number of such cells."""
    cdef Py_ssize_t n = out.shape[0], nk = key_offsets.shape[0] - 1, i, k, a, b, j, slow = 0
    cdef bint has_valid = valid.shape[0] > 0, plain
    cdef const uint8_t* s = &data[0] if data.shape[0] else NULL
    cdef const uint8_t* kb = &keys[0] if keys.shape[0] else NULL
    cdef int16_t found
    if offsets.shape[0] < n + 1:
        raise ValueError("offsets do not match the column")
    with nogil:
        for i in range(n):
            if has_valid and not (valid[(valid_off + i) >> 3] >> ((valid_off + i) & 7)) & 1:
                out[i] = MISSING
                continue
            a = offsets[i]
            b = offsets[i + 1]
            plain = True
            for j in range(a, b):
                if s[j] < 32 or s[j] > 126:
                    plain = False
                    break
            if not plain:
                out[i] = SLOW_CELL
                slow += 1
                continue
            while a < b and s[a] == 32:
                a += 1
            while b > a and s[b - 1] == 32:
                b -= 1
            if a == b:
                out[i] = MISSING
                continue
            found = BAD
            for k in range(nk):
                if key_offsets[k + 1] - key_offsets[k] == b - a:   # keys are a few bytes: no call to memcmp
                    j = 0
                    while j < b - a and kb[key_offsets[k] + j] == s[a + j]:
                        j += 1
                    if j == b - a:
                        found = <int16_t>k
                        break
            out[i] = found
    return slow
