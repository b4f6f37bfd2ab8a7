"""Canonical JSON, the signed record digest, field check codes and Ed25519 signatures over groups.

Layout ``assess.store/2``. A record's digest is SHA-256 of the canonical JSON *array* of its field
values in the fixed order of :data:`FIELDS` (JSON-valued fields are embedded as the JSON they are
stored as, so the array is unambiguous). The issuing department signs, with Ed25519, a small
manifest for a group of records (one import chunk, or one record) that commits to the
concatenated 32-byte record digests of the group (stored beside it, ``signatures.digests``):
signing each record alone costs ~26 µs, too slow for bulk import, while a group signature proves
every record in it just the same. Verification needs only the record, its group's manifest and
digests, and the department's public key, so it works offline on an export.

Which field was changed is named with a *check list* stored in the record (``field_digests``):
the CRC-32 of each field's canonical JSON, 4 bytes per field in :data:`FIELDS` order. The check
list only locates a change; integrity rests on the signed SHA-256 record digest, which the check
list does not enter. A record whose digest no longer matches fails verification whatever its check
list says; a check list altered on its own fails too ("field_digests"). We chose CRC-32 over
per-field SHA-256 (layout 1 stored 32 bytes per field, 768 bytes a record) because the locator
needs no collision resistance, and the 24 hashes and 672 bytes a row were most of the bulk
import's cost.
"""
from __future__ import annotations

import base64
import hashlib
import json
import zlib
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature

LAYOUT = "assess.store/2"
# Fields an import holds constant come first, so that the digest state after them is computed once.
CONTEXT_FIELDS = ("instrument", "version", "definition_hash", "engine_version", "settings", "status",
                  "assessed_on", "assessors", "organisation", "department", "reason", "origin", "supersedes",
                  "created_at", "key_id")
ROW_FIELDS = ("record_id", "person_key", "id_number_enc", "region", "answers", "result", "total", "level", "source")
FIELDS = CONTEXT_FIELDS + ROW_FIELDS
JSON_FIELDS = frozenset({"settings", "answers", "result", "assessors", "source"})   # stored as canonical JSON text
CHECK_SIZE = 4            # bytes of field check (CRC-32) per field
_sha = hashlib.sha256
_crc = zlib.crc32


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def field_json(name: str, value) -> str:
    """A field's canonical JSON; JSON-valued fields are stored as canonical JSON text already."""
    if name in JSON_FIELDS:
        return "null" if value is None else value
    return canonical(value)


def field_check(text: str) -> bytes:
    return _crc(text.encode("utf-8")).to_bytes(CHECK_SIZE, "big")


def payload(rec) -> list[str]:
    """The canonical JSON of each field, in FIELDS order."""
    return [field_json(n, rec[n]) for n in FIELDS]


def seal_parts(parts: list[str]) -> tuple[bytes, bytes]:
    """(field check list, 32-byte record digest) of one record's field JSON texts."""
    checks = b"".join(field_check(p) for p in parts)
    return checks, _sha(("[" + ",".join(parts) + "]").encode("utf-8")).digest()


def manifest(department: str, key_id: str, created_at: str, digests: bytes) -> str:
    return canonical({"layout": LAYOUT, "department": department, "key_id": key_id, "created_at": created_at,
                      "count": len(digests) // 32, "records_sha256": _sha(digests).hexdigest()})


def sign(private_key, payload_: str) -> str:
    return base64.b64encode(private_key.sign(payload_.encode("utf-8"))).decode("ascii")


def check_signature(public_key, payload_: str, signature: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature), payload_.encode("utf-8"))
        return True
    except (InvalidSignature, ValueError):
        return False


def record_digest(data: bytes) -> str:
    return _sha(data).hexdigest()


@dataclass
class Verdict:
    """The outcome of verifying one record (or its revocation): ok, or which fields (or what else) no longer match."""

    record_id: str
    ok: bool
    fields: list = field(default_factory=list)   # names of fields whose value no longer matches
    reason: str = ""
    kind: str = "record"                         # or "revocation" (of the record named)
    reason_zh: str = ""                          # ``reason`` in Chinese, for officers (records only)

    def to_dict(self) -> dict:
        return {"record_id": self.record_id, "ok": self.ok, "fields": self.fields, "reason": self.reason,
                "kind": self.kind, "reason_zh": self.reason_zh}


class Failure(str):
    """Why a signature group does not hold: the English text, with its Chinese as ``zh``."""

    zh: str

    def __new__(cls, en: str, zh: str):
        self = super().__new__(cls, en)
        self.zh = zh
        return self


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


def check_group(sig_row, public_keys: dict):
    """(department, key id, digests) of a signature row whose signature holds, or a reason string."""
    entry = public_keys.get(sig_row["key_id"])
    if entry is None:
        return Failure(f"no public key {sig_row['key_id']} of department {sig_row['department']} among the "
                       f"trusted keys", f"可信公钥中没有 {sig_row['department']} 部门的公钥 {sig_row['key_id']}")
    dept, pub = entry
    if dept != sig_row["department"] or not check_signature(pub, sig_row["manifest"], sig_row["signature"]):
        return Failure("the signature on the record's manifest is not valid", "记录签名清单上的签名无效")
    m = json.loads(sig_row["manifest"])
    digests = bytes(sig_row["digests"])
    if m.get("department") != dept or m.get("key_id") != sig_row["key_id"] or m.get("layout") != LAYOUT:
        return Failure("the manifest names another department, key or layout", "签名清单所列的部门、密钥或格式与签名不符")
    if m.get("records_sha256") != _sha(digests).hexdigest() or m.get("count") != len(digests) // 32:
        return Failure("the group's record digests do not match its signed manifest", "签名组的记录摘要与签名清单不符")
    return dept, sig_row["key_id"], digests


REVOCATION_FIELDS = ("record_id", "department", "reason", "actor", "created_at", "key_id")


def revocation_payload(rev) -> str:
    """What a revocation's issuer signs (Store.revoke); its id is the SHA-256 of this text."""
    return canonical({n: rev[n] for n in REVOCATION_FIELDS})


def check_revocation(rev, public_keys: dict, issuer: str | None) -> str:
    """Why a revocation row must not be honoured, or "" when it may be.

    It counts only when signed under a trusted key of the department it names, and that department
    issued the record (``issuer``; None when the record is not stored): only the issuer revokes.
    """
    entry = public_keys.get(rev["key_id"])
    if entry is None:
        return f"no public key {rev['key_id']} of department {rev['department']} among the trusted keys"
    payload_ = revocation_payload(rev)
    if entry[0] != rev["department"] or not check_signature(entry[1], payload_, rev["signature"]):
        return "the signature on the revocation is not valid"
    if rev["revocation_id"] != record_digest(payload_.encode("utf-8")):
        return "the revocation id does not match its signed content"
    if issuer is None:
        return "it revokes no stored record"
    if rev["department"] != issuer:
        return f"revoked by {rev['department']}, but the record was issued by {issuer}"
    return ""


def verify_record(rec, sig_row, public_keys: dict, cache: ManifestCache | None = None) -> Verdict:
    """Verify one record (a mapping with every column) against its signed group.

    ``sig_row`` is the ``signatures`` row named by ``rec["sig_id"]`` (or None), ``public_keys``
    maps key id → (department, Ed25519 public key) and is the trust anchor: keys come from the
    departments, never from the store being checked.
    """
    rid = rec["record_id"]
    parts = payload(rec)
    checks, digest = seal_parts(parts)
    stored = bytes(rec["field_digests"])
    if len(stored) == len(checks):
        changed = [n for i, n in enumerate(FIELDS) if checks[4 * i:4 * i + 4] != stored[4 * i:4 * i + 4]]
    else:
        changed = ["field_digests"]
    checked = cache.get(rec["sig_id"]) if cache else None
    if checked is None:
        if sig_row is None:
            return Verdict(rid, False, changed, f"signature group {rec['sig_id']} is missing",
                           reason_zh=f"签名组 {rec['sig_id']} 缺失")
        checked = check_group(sig_row, public_keys)
        if isinstance(checked, str):
            return Verdict(rid, False, changed, checked, reason_zh=checked.zh)
        if cache:
            cache.put(sig_row["sig_id"], checked)
    dept, kid, digests = checked
    idx = rec["sig_index"]
    signed = digests[32 * idx:32 * idx + 32] if 0 <= idx < len(digests) // 32 else b""
    if signed != digest:
        if changed and changed != ["field_digests"]:
            return Verdict(rid, False, changed, "changed after signing: " + ", ".join(changed),
                           reason_zh="签名后被改动的字段：" + "、".join(changed))
        return Verdict(rid, False, ["field_digests"], "the record does not match its signed digest",
                       reason_zh="记录与其签名摘要不符")
    if changed:
        return Verdict(rid, False, ["field_digests"], "the field check list was altered after signing",
                       reason_zh="字段校验列表在签名后被改动")
    if rec["department"] != dept or rec["key_id"] != kid:
        return Verdict(rid, False, ["department"], "the record names another issuer than its signature",
                       reason_zh="记录所载发证部门与其签名不符")
    return Verdict(rid, True)
