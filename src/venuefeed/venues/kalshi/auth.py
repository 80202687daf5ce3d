"""Kalshi API-key request signing (RSA-PSS / SHA-256).

Each signed request carries three headers (KD ``getting_started/api_keys.md``):
``KALSHI-ACCESS-KEY`` (the key id), ``KALSHI-ACCESS-TIMESTAMP`` (milliseconds)
and ``KALSHI-ACCESS-SIGNATURE``, the base64 RSA-PSS signature (MGF1-SHA256,
salt = digest length) of ``timestamp + METHOD + path``, where ``path`` starts
at ``/trade-api/...`` and excludes the query string. The WebSocket handshake is
signed the same way over ``GET /trade-api/ws/v2``.

The private key text is registered with the log redactor the moment it is
loaded and is never part of a ``repr`` or an error message.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from venuefeed.log import register_secret

__all__ = [
    "HEADER_KEY",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "CredentialsError",
    "Signer",
    "generate_test_keypair",
    "load_public_key",
    "load_signer",
    "verify_request",
]

HEADER_KEY = "KALSHI-ACCESS-KEY"
HEADER_TIMESTAMP = "KALSHI-ACCESS-TIMESTAMP"
HEADER_SIGNATURE = "KALSHI-ACCESS-SIGNATURE"

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)


class CredentialsError(Exception):
    """Credentials are missing or unusable; the message says what to configure."""


class Signer:
    """Signs requests with one API key; callable as the transport's ``signer(method, path)``."""

    __slots__ = ("_clock", "_key", "key_id")

    def __init__(
        self,
        key_id: str,
        private_key: rsa.RSAPrivateKey,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key_id = key_id
        self._key = private_key
        self._clock = clock

    @classmethod
    def from_pem(cls, key_id: str, pem: bytes | str) -> Signer:
        """Build from PEM text; a clear :class:`CredentialsError` when it is not an RSA key."""
        data = pem.encode() if isinstance(pem, str) else pem
        register_secret(data.decode(errors="replace"))
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            # The library's message never contains key material; keep only its class.
            raise CredentialsError(
                f"kalshi private key is not a readable unencrypted PEM key ({type(exc).__name__})"
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise CredentialsError("kalshi private key must be an RSA key")
        return cls(key_id, key)

    def headers(self, method: str, path: str) -> dict[str, str]:
        """The three signed headers for ``method`` on ``path`` (no query string)."""
        path = path.split("?", 1)[0]
        ts = str(int(self._clock() * 1000))
        message = f"{ts}{method.upper()}{path}".encode()
        signature = self._key.sign(message, _PSS, hashes.SHA256())
        return {
            HEADER_KEY: self.key_id,
            HEADER_TIMESTAMP: ts,
            HEADER_SIGNATURE: base64.b64encode(signature).decode(),
        }

    def __call__(self, method: str, path: str) -> Mapping[str, str]:
        return self.headers(method, path)

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r})"


def load_signer(
    key_id: str | None, private_key: str | None, private_key_path: str | None
) -> Signer | None:
    """The signer for configured credentials, or None when none are configured.

    ``private_key`` is the PEM text (e.g. from an environment variable),
    ``private_key_path`` a file holding it. A key id without a key (or the
    reverse) is a configuration error, reported without echoing any secret.
    """
    if not key_id and not private_key and not private_key_path:
        return None
    if not key_id:
        raise CredentialsError(
            "venues.kalshi.credentials.api_key_id is required with a private key"
        )
    register_secret(key_id)
    if private_key:
        return Signer.from_pem(key_id, private_key)
    if private_key_path:
        try:
            pem = Path(private_key_path).expanduser().read_bytes()
        except OSError as exc:
            raise CredentialsError(
                f"cannot read kalshi private key file {private_key_path}: {exc.strerror}"
            ) from None
        return Signer.from_pem(key_id, pem)
    raise CredentialsError(
        "venues.kalshi.credentials: set private_key (PEM text) or private_key_path"
    )


def load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    """Load the PEM public key a simulator verifies signatures with."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise CredentialsError("kalshi public key must be an RSA key")
    return key


def verify_request(
    public_key: rsa.RSAPublicKey,
    headers: Mapping[str, str],
    method: str,
    path: str,
    *,
    now_ms: int | None = None,
    max_skew_ms: int = 60_000,
) -> str | None:
    """Check a request's signed headers; None when valid, else why not (simulator side)."""
    key_id = headers.get(HEADER_KEY)
    ts = headers.get(HEADER_TIMESTAMP)
    sig = headers.get(HEADER_SIGNATURE)
    if not key_id or not ts or not sig:
        return "missing authentication headers"
    if not ts.isdigit():
        return "bad timestamp"
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if abs(now - int(ts)) > max_skew_ms:
        return "timestamp outside the allowed window"
    try:
        public_key.verify(
            base64.b64decode(sig, validate=True),
            f"{ts}{method.upper()}{path.split('?', 1)[0]}".encode(),
            _PSS,
            hashes.SHA256(),
        )
    except (InvalidSignature, ValueError):
        return "invalid signature"
    return None


def public_pem_of(private_pem: bytes) -> bytes:
    """The public half (PEM) of a private key in PEM form (:class:`CredentialsError` if none)."""
    try:
        key = serialization.load_pem_private_key(private_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CredentialsError(f"not an unencrypted PEM private key: {exc}") from None
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate_test_keypair() -> tuple[bytes, bytes]:
    """A fresh 2048-bit RSA key pair as ``(private_pem, public_pem)`` for demos and tests."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem
