# cython: language_level=3
# The scoring kernel built a second time, as assess._kernel_avx2, for x86-64 processors with AVX2,
# FMA, BMI1/2 and POPCNT (Intel Haswell and AMD Excavator, 2013-2015, and every one since): the
# same source, compiled with those instruction sets (setup.py), so that the compiler vectorises
# the column passes eight int32 rows at a time instead of four. assess/_compiled.py loads it only
# where the baseline build's cpu_has_avx2() says the processor runs it; both give the same
# answers (tests/test_kernel_parity.py compares them row by row).
include "score.pyx"
