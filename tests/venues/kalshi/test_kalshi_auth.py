"""RSA-PSS request signing: the documented message, verifiable, and never logged."""

from __future__ import annotations

import io

import pytest

from venuefeed import log
from venuefeed.venues.kalshi.auth import (
    HEADER_KEY,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    CredentialsError,
    Signer,
    generate_test_keypair,
    load_public_key,
    load_signer,
    verify_request,
)


def test_signature_covers_timestamp_method_path_without_query(keypair: tuple[bytes, bytes]) -> None:
    private, public = keypair
    signer = Signer.from_pem("kid", private)
    signer._clock = lambda: 1703875200.0  # type: ignore[attr-defined]
    headers = signer.headers("get", "/trade-api/v2/portfolio/balance?limit=5")
    assert headers[HEADER_KEY] == "kid" and headers[HEADER_TIMESTAMP] == "1703875200000"
    key = load_public_key(public)
    now = 1703875200000
    assert (
        verify_request(key, headers, "GET", "/trade-api/v2/portfolio/balance", now_ms=now) is None
    )
    # The query string is not signed, the path and method are.
    assert (
        verify_request(key, headers, "GET", "/trade-api/v2/portfolio/balance?x=1", now_ms=now)
        is None
    )
    assert verify_request(key, headers, "POST", "/trade-api/v2/portfolio/balance", now_ms=now)
    assert verify_request(key, headers, "GET", "/trade-api/v2/markets", now_ms=now)
    assert verify_request(
        key, headers, "GET", "/trade-api/v2/portfolio/balance", now_ms=now + 600_000
    )
    other = load_public_key(generate_test_keypair()[1])
    assert verify_request(other, headers, "GET", "/trade-api/v2/portfolio/balance", now_ms=now)
    tampered = {**headers, HEADER_SIGNATURE: headers[HEADER_SIGNATURE][::-1]}
    assert verify_request(key, tampered, "GET", "/trade-api/v2/portfolio/balance", now_ms=now)


def test_load_signer_sources_and_clear_errors(tmp_path, keypair: tuple[bytes, bytes]) -> None:
    private, _ = keypair
    assert load_signer(None, None, None) is None
    assert load_signer("kid", private.decode(), None) is not None
    pem_file = tmp_path / "kalshi.pem"
    pem_file.write_bytes(private)
    assert load_signer("kid", None, str(pem_file)) is not None
    with pytest.raises(CredentialsError, match="api_key_id"):
        load_signer(None, private.decode(), None)
    with pytest.raises(CredentialsError, match="private_key"):
        load_signer("kid", None, None)
    with pytest.raises(CredentialsError, match="cannot read"):
        load_signer("kid", None, str(tmp_path / "missing.pem"))
    broken = private.decode().replace("A", "B", 40)
    with pytest.raises(CredentialsError) as info:
        load_signer("kid", broken, None)
    assert "MII" not in str(info.value) and broken[40:80] not in str(info.value)


def test_private_key_is_never_logged(keypair: tuple[bytes, bytes]) -> None:
    private, _ = keypair
    signer = load_signer("kid", private.decode(), None)
    assert "PRIVATE" not in repr(signer)
    out = io.StringIO()
    log.configure(level="INFO", fmt="json", stream=out)
    body_line = private.decode().splitlines()[3]
    log.get_logger("test").warning("oops", detail=f"key was {private.decode()}", line=body_line)
    text = out.getvalue()
    assert body_line not in text and "********" in text
