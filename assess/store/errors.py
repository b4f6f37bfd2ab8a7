"""Error codes of the results store, in the shape of :mod:`assess.errors` (title, message template).

They live here rather than in ``assess/errors.py`` so the store can grow without touching the
shared catalogue; codes are stable and never reused, like the others.
"""
from __future__ import annotations

import enum

from ..errors import AssessError, CodeCatalogue, Problem


class StoreCode(CodeCatalogue, enum.Enum):
    STORE_001 = ("store not initialised",
                 "{where}: the database has no assess tables (schema {found}). Run `assess store init` first.")
    STORE_002 = ("store schema newer than this engine",
                 "{where}: schema version {found} is newer than this engine knows ({known}). Upgrade assess.")
    STORE_003 = ("deployment setting missing",
                 "{where}: {name} is not set. {fix}")
    STORE_004 = ("key file problem", "{where}: {detail}. {fix}")
    STORE_005 = ("identity number rejected",
                 "{where}: identity number {masked} is not a valid 公民身份号码 ({detail}). Check the number.")
    STORE_006 = ("recognition policy invalid", "{where}: {detail}. Fix the policy file.")
    STORE_007 = ("unknown department or purpose", "{where}: {detail}. Known: {allowed}.")
    STORE_008 = ("import file problem", "{where}: {detail}. {fix}")
    STORE_009 = ("record not found", "{where}: no record {record_id!r}. Check the id (`assess store lookup`).")
    STORE_010 = ("not the issuing department",
                 "{where}: record {record_id} was issued by {issuer}; only the issuer can {action} it.")
    STORE_011 = ("record already revoked", "{where}: record {record_id} is already revoked.")
    STORE_012 = ("invalid revocation in the way",
                 "{where}: record {record_id} has a revocation row that does not verify ({detail}); it was "
                 "written outside assess. Run `assess store verify` and restore the store from a backup.")
    STORE_013 = ("supersedes another person's record",
                 "{where}: record {record_id} is another person's; a record supersedes only the same person's.")
    STORE_014 = ("assessment date in the future",
                 "{where}: assessed_on {date} is after today in China ({today}). Give the day the assessment "
                 "was made.")


class StoreError(AssessError, RuntimeError):
    """A store operation cannot be done as asked."""


def store_error(code: StoreCode, where: str = "store", **kw) -> StoreError:
    return StoreError(Problem(code, code.format(where=where, **kw), where))  # type: ignore[arg-type]
