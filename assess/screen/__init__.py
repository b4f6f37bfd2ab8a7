"""Province-scale screening files: read in batches, check, score, write OUT and REJECTS, report.

>>> from assess.screen import screen                      # doctest: +SKIP
>>> s = screen("county.csv", "gbt42195-2022", "out.parquet", report="report.html")   # doctest: +SKIP
>>> s.stats.rows_read == s.stats.scored + s.stats.rejected                             # doctest: +SKIP
True
"""
from .errors import ScreenError
from .run import Summary, screen

__all__ = ["ScreenError", "Summary", "screen"]
