"""Person keys, identity-number encryption and the deployment's key files.

The person key is HMAC-SHA256 of the normalised 公民身份号码 (GB 11643: 18 characters, upper-case
``X``, MOD 11-2 check, see :mod:`assess.idnumber`) under a deployment secret that every department
sharing a store must hold. The number itself is kept only AES-GCM encrypted (key separate from
the HMAC secret, person key as associated data) or not at all (``keep_id_number: none``). It never
appears in logs or exceptions: :func:`assess.idnumber.mask` keeps the first 6 and the last 1.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .. import idnumber
from .errors import StoreCode, store_error

PERSON_SECRET = "person-key.secret"
ID_NUMBER_KEY = "id-number.key"
KEEP_ID_NUMBER = ("encrypted", "none")


def normalise(number, where: str = "store") -> str:
    """The canonical form of an identity number, or StoreError (never echoing the number)."""
    chk = idnumber.check(number if isinstance(number, str) else None)
    if not chk.ok:
        raise store_error(StoreCode.STORE_005, where, masked=idnumber.mask(number) if isinstance(number, str) else
                          "(not text)", detail=idnumber.REASON_ZH.get(chk.reason, "malformed"))
    return chk.number


def person_key(secret: bytes, normalised: str) -> str:
    return hmac.digest(secret, normalised.encode("ascii"), "sha256").hex()


class PersonKeyer:
    """:func:`person_key` for bulk use: the HMAC inner and outer states are keyed once (RFC 2104),
    so each key costs two hash-state copies instead of a fresh HMAC (1 µs instead of 2.6 µs)."""

    def __init__(self, secret: bytes):
        key = hashlib.sha256(secret).digest() if len(secret) > 64 else secret
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def digest(self, normalised: bytes) -> bytes:
        """The 32-byte person key of a normalised number (ASCII bytes)."""
        i = self._inner.copy()
        i.update(normalised)
        o = self._outer.copy()
        o.update(i.digest())
        return o.digest()



class IdCipher:
    """AES-256-GCM over the normalised number; the person key is bound in as associated data."""

    def __init__(self, key: bytes):
        self.key = key
        self._aead = AESGCM(key)

    def encrypt(self, normalised: str, pkey: str, nonce: bytes | None = None) -> str:
        nonce = nonce or os.urandom(12)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, normalised.encode("ascii"),
                                                           pkey.encode("ascii"))).decode("ascii")

    def decrypt(self, blob: str, pkey: str) -> str:
        raw = base64.b64decode(blob)
        return self._aead.decrypt(raw[:12], raw[12:], pkey.encode("ascii")).decode("ascii")


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _read(path: Path, what: str, fix: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise store_error(StoreCode.STORE_004, str(path), detail=f"cannot read the {what} ({exc.strerror})",
                          fix=fix) from None


def create_keys(keys_dir: str | os.PathLike, department: str, *, id_number_key: bool = True) -> list[Path]:
    """Create missing key files for one department; never overwrite. Returns the files made."""
    d = Path(keys_dir)
    (d / "public").mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    made = []
    if not (d / PERSON_SECRET).exists():
        _write_secret(d / PERSON_SECRET, os.urandom(32).hex().encode())
        made.append(d / PERSON_SECRET)
    if id_number_key and not (d / ID_NUMBER_KEY).exists():
        _write_secret(d / ID_NUMBER_KEY, AESGCM.generate_key(256).hex().encode())
        made.append(d / ID_NUMBER_KEY)
    priv_path = d / f"{department}.ed25519.pem"
    if not priv_path.exists():
        priv = Ed25519PrivateKey.generate()
        _write_secret(priv_path, priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
        (d / "public" / f"{department}.pub.pem").write_bytes(priv.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        made += [priv_path, d / "public" / f"{department}.pub.pem"]
    return made


def load_secret(keys_dir, name: str) -> bytes:
    path = Path(keys_dir) / name
    raw = _read(path, name, "Run `assess store init` or copy the deployment's file there.").strip()
    try:
        return bytes.fromhex(raw.decode("ascii"))
    except ValueError:
        raise store_error(StoreCode.STORE_004, str(path), detail="not a hex secret",
                          fix="Restore the deployment's file.") from None


def load_signing_key(keys_dir, department: str) -> Ed25519PrivateKey:
    path = Path(keys_dir) / f"{department}.ed25519.pem"
    key = serialization.load_pem_private_key(_read(path, "signing key", "Run `assess store init`."), None)
    if not isinstance(key, Ed25519PrivateKey):
        raise store_error(StoreCode.STORE_004, str(path), detail="not an Ed25519 private key",
                          fix="Use the key made by `assess store init`.")
    return key


def load_public_keys(public_dir) -> dict[str, tuple[str, Ed25519PublicKey]]:
    """key id → (department, public key), from ``<department>.pub.pem`` files."""
    out = {}
    for path in sorted(Path(public_dir).glob("*.pub.pem")):
        key = serialization.load_pem_public_key(path.read_bytes())
        if isinstance(key, Ed25519PublicKey):
            out[key_id(key)] = (path.name[:-len(".pub.pem")], key)
    return out
