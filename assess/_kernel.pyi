"""Type stub of the compiled scoring kernel (kernels/score.pyx), for type checkers."""
import numpy as np
import numpy.typing as npt

from ._plan import Plan

ABI: int   # the interface it was built with (assess/_compiled.py)

class KernelPlan:
    plan: Plan
    max_program: int
    def __init__(self, plan: Plan) -> None: ...

def score_rows(plan: KernelPlan, col_ptr: npt.NDArray[np.uint64], col_kind: npt.NDArray[np.int8],
               valid_ptr: npt.NDArray[np.uint64], valid_off: npt.NDArray[np.int64], flag_ptr: npt.NDArray[np.uint64],
               domains: npt.NDArray[np.int32], scores: npt.NDArray[np.int32], level_initial: npt.NDArray[np.int8],
               level: npt.NDArray[np.int8], rules: npt.NDArray[np.uint32], status: npt.NDArray[np.uint8],
               error_field: npt.NDArray[np.int16], categories: npt.NDArray[np.int8],
               start: int, stop: int) -> int:
    """Score rows start … stop-1 (column-major domains/scores/categories); returns rows not ok."""

def icd10_cells(data: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int32], valid: npt.NDArray[np.uint8],
                valid_off: int, n: int, required: bool, categories: npt.NDArray[np.uint8],
                state: npt.NDArray[np.int16], flags: npt.NDArray[np.uint8], start: int = 0, stop: int = -1) -> None:
    """Read ICD-10 diagnosis cells of an Arrow string array into a state and per-condition flags."""

def text_codes(data: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int32], valid: npt.NDArray[np.uint8],
               valid_off: int, keys: npt.NDArray[np.uint8], key_offsets: npt.NDArray[np.int32],
               out: npt.NDArray[np.int16]) -> int:
    """Option indexes of a text answer column (-3 for cells pyarrow's trim must judge); returns their count."""

def cpu_has_avx2() -> bool:
    """Whether this processor runs the AVX2 build, assess._kernel_avx2 (AVX2, FMA, BMI1/2, POPCNT)."""

def rule_bits(rules: npt.NDArray[np.uint32], out: npt.NDArray[np.uint8], start: int, stop: int) -> None:
    """Bit k of rules[start:stop] as Arrow's packed booleans in out[k] (start a multiple of 8)."""
