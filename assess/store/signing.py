"""Canonical JSON, per-field digests and Ed25519 signatures over groups of records.

A record's signed payload is its fields plus the list of per-field digests: SHA-256 of each
field's canonical JSON (sorted keys, UTF-8, no spaces), in the fixed order of :data:`FIELDS`.
The record digest is SHA-256 of that digest list. The issuing department signs, with Ed25519, the
canonical JSON manifest of a group of record digests (one group per import batch chunk, or one
record): signing each record alone costs ~26 µs, too slow for bulk import, while a group signature
proves every record in it just the same. Verification needs only the record, its group's manifest
and the department's public key, so it works offline on an export; when a field was changed after
signing, its digest no longer matches and :func:`verify_record` names it.
"""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature

LAYOUT = "assess.store/1"
FIELDS = ("record_id", "person_key", "id_number_enc", "region", "instrument", "version", "definition_hash",
          "engine_version", "settings", "answers", "result", "total", "level", "status", "assessed_on",
          "assessors", "organisation", "department", "reason", "origin", "supersedes", "source",
          "created_at", "key_id")
JSON_FIELDS = frozenset({"settings", "answers", "result", "assessors", "source"})   # stored as canonical JSON text
_sha = hashlib.sha256


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def field_json(name: str, value) -> str:
    """A field's canonical JSON; JSON-valued fields are stored as canonical JSON text already."""
    if name in JSON_FIELDS:
        return "null" if value is None else value
    return canonical(value)


def field_digest(name: str, value) -> bytes:
    return _sha(field_json(name, value).encode("utf-8")).digest()


def field_digests(rec) -> bytes:
    return b"".join(field_digest(n, rec[n]) for n in FIELDS)


def record_digest(digests: bytes) -> str:
    return _sha(digests).hexdigest()


def manifest(department: str, key_id: str, created_at: str, digests: list[str]) -> str:
    return canonical({"layout": LAYOUT, "department": department, "key_id": key_id, "created_at": created_at,
                      "records": digests})


def sign(private_key, payload: str) -> str:
    return base64.b64encode(private_key.sign(payload.encode("utf-8"))).decode("ascii")


def check_signature(public_key, payload: str, signature: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature), payload.encode("utf-8"))
        return True
    except (InvalidSignature, ValueError):
        return False


@dataclass
class Verdict:
    """The outcome of verifying one record: ok, or which fields (or what else) no longer match."""

    record_id: str
    ok: bool
    fields: list = field(default_factory=list)   # names of fields whose digest no longer matches
    reason: str = ""

    def to_dict(self) -> dict:
        return {"record_id": self.record_id, "ok": self.ok, "fields": self.fields, "reason": self.reason}


class ManifestCache:
    """Manifests whose signature has been checked, by sig_id (signatures are append-only)."""

    def __init__(self, size: int = 4096):
        self.size, self._ok = size, {}

    def get(self, sig_id):
        return self._ok.get(sig_id)

    def put(self, sig_id, value):
        if len(self._ok) >= self.size:
            self._ok.pop(next(iter(self._ok)))
        self._ok[sig_id] = value


def verify_record(rec, sig_row, public_keys: dict, cache: ManifestCache | None = None) -> Verdict:
    """Verify one record (a mapping with every column) against its signed manifest.

    ``sig_row`` is the ``signatures`` row named by ``rec["sig_id"]`` (or None), ``public_keys``
    maps key id → (department, Ed25519 public key) and is the trust anchor: keys come from the
    departments, never from the store being checked.
    """
    rid = rec["record_id"]
    stored = bytes(rec["field_digests"])
    if len(stored) != 32 * len(FIELDS):
        return Verdict(rid, False, ["field_digests"], "the field digest list is damaged")
    changed = [n for i, n in enumerate(FIELDS) if field_digest(n, rec[n]) != stored[32 * i:32 * i + 32]]
    checked = cache.get(rec["sig_id"]) if cache else None
    if checked is None:
        if sig_row is None:
            return Verdict(rid, False, changed, f"signature group {rec['sig_id']} is missing")
        entry = public_keys.get(sig_row["key_id"])
        if entry is None:
            return Verdict(rid, False, changed, f"no public key {sig_row['key_id']} of department "
                                                f"{sig_row['department']} among the trusted keys")
        dept, pub = entry
        if dept != sig_row["department"] or not check_signature(pub, sig_row["manifest"], sig_row["signature"]):
            return Verdict(rid, False, changed, "the signature on the record's manifest is not valid")
        m = json.loads(sig_row["manifest"])
        if m.get("department") != dept or m.get("key_id") != sig_row["key_id"]:
            return Verdict(rid, False, changed, "the manifest names another department or key")
        checked = (dept, sig_row["key_id"], m["records"])
        if cache:
            cache.put(sig_row["sig_id"], checked)
    dept, kid, digests = checked
    if changed:
        return Verdict(rid, False, changed, "changed after signing: " + ", ".join(changed))
    idx = rec["sig_index"]
    if not (0 <= idx < len(digests)) or digests[idx] != record_digest(stored):
        return Verdict(rid, False, ["field_digests"], "the field digest list does not match the signed manifest")
    if rec["department"] != dept or rec["key_id"] != kid:
        return Verdict(rid, False, ["department"], "the record names another issuer than its signature")
    return Verdict(rid, True)
