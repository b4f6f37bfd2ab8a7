"""assess: scoring engine for standardised elderly ability and disability assessments."""
from ._version import __version__
from .errors import AnswerError, AssessError, InstrumentError, SettingError
from .instrument import InstrumentRef, list_instruments, load_instrument, load_path
from .model import Instrument
from .result import Result
from .score import backend, score, score_one
from .store import recognise

__all__ = [
    "__version__", "AnswerError", "AssessError", "Instrument", "InstrumentError", "InstrumentRef", "Result",
    "SettingError", "backend", "list_instruments", "load_instrument", "load_path", "recognise", "score", "score_one",
]
