"""Key sets fetched over HTTP from a real local server: cache, rotation, outages, limits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from juncture.methods.base import PUBLIC_FAILURE, Environment, MethodUnavailable
from juncture.methods.external_jwt import ExternalJwt
from juncture.outbound import guarded_fetcher

from .conftest import NOW, make
from .issuer import AUDIENCE, EC_KEY, ISSUER, NEW_EC, claims, jwks, jwks_server, sign

#: The key set servers here listen on 127.0.0.1: allowed as `--ssf-allow-private` allows them.
PRIVATE_ALLOWED = Environment(fetch=guarded_fetcher(allow_private=True))


def idp(url: str, env: Environment = PRIVATE_ALLOWED, **options: Any) -> ExternalJwt:
    return make(
        "external_jwt",
        env,
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=["ES256"],
        jwks_uri=url,
        **options,
    )


def token(at: Any, key: Any = EC_KEY) -> str:
    return sign(claims(at), key=key)


def test_keys_are_fetched_once_and_cached_for_the_ttl() -> None:
    with jwks_server(jwks(EC_KEY)) as server:
        method = idp(server.url, jwks_ttl="10m")
        assert server.requests == 0  # nothing is fetched at configuration time
        assert method.verify(None, token(NOW), now=NOW).ok
        later = NOW + timedelta(minutes=9)
        assert method.verify(None, token(later), now=later).ok
        assert server.requests == 1
        expired = NOW + timedelta(minutes=10)
        assert method.verify(None, token(expired), now=expired).ok
        assert server.requests == 2


def test_an_unknown_kid_refetches_at_most_once_a_minute() -> None:
    with jwks_server(jwks(EC_KEY)) as server:
        method = idp(server.url)
        assert method.verify(None, token(NOW), now=NOW).ok
        server.serve(jwks(EC_KEY, NEW_EC))  # the issuer rotates in a new key
        soon = NOW + timedelta(seconds=30)
        refused = method.verify(None, token(soon, NEW_EC), now=soon)
        assert (refused.ok, refused.code) == (False, "method.failed.key")
        assert server.requests == 1  # too soon after the last fetch
        later = NOW + timedelta(seconds=61)
        assert method.verify(None, token(later, NEW_EC), now=later).ok
        assert server.requests == 2
        # an attacker's made-up kid cannot make us hammer the issuer
        for seconds in (62, 63, 64):
            at = NOW + timedelta(seconds=seconds)
            forged = sign(claims(at), key=NEW_EC, kid="made-up")
            assert method.verify(None, forged, now=at).code == "method.failed.key"
        assert server.requests == 2


def test_an_outage_keeps_the_last_good_keys() -> None:
    with jwks_server(jwks(EC_KEY)) as server:
        method = idp(server.url, jwks_ttl="5m")
        assert method.verify(None, token(NOW), now=NOW).ok
        server.status = 503
        later = NOW + timedelta(minutes=6)
        assert method.verify(None, token(later), now=later).ok
        assert server.requests == 2
        server.status = 200
        much_later = NOW + timedelta(minutes=12)
        assert method.verify(None, token(much_later), now=much_later).ok
        assert server.requests == 3


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (503, b"{}", {}),
        (200, b"not json", {}),
        (200, b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', {}),
        (200, b'{"keys": "none"}', {}),
        (200, b'{"keys": [' + b'{"kty": "oct", "k": "AAAA"},' * 40000 + b"{}]}", {}),
        (302, b"", {"Location": "https://idp.example.com/jwks"}),
    ],
    ids=["down", "not-json", "symmetric-only", "bad-shape", "too-large", "redirect"],
)
def test_no_usable_keys_is_unavailable_not_a_pass(
    status: int, body: bytes, headers: dict[str, str]
) -> None:
    with jwks_server(jwks(EC_KEY)) as server:
        server.status, server.body, server.headers = status, body, headers
        method = idp(server.url)
        with pytest.raises(MethodUnavailable) as caught:
            method.verify(None, token(NOW), now=NOW)
        assert caught.value.code == "method.unavailable.keys"
        assert caught.value.http_status == 503


def test_an_unreachable_key_server_is_unavailable() -> None:
    with jwks_server(jwks(EC_KEY)) as server:
        url = server.url
    method = idp(url)
    with pytest.raises(MethodUnavailable):
        method.verify(None, token(NOW), now=NOW)


def test_keys_from_the_url_verify_only_their_own_signatures() -> None:
    with jwks_server(jwks(EC_KEY)) as server:
        method = idp(server.url)
        forged = sign(claims(NOW), key=NEW_EC, kid="ec1")
        result = method.verify(None, forged, now=NOW)
        assert (result.ok, result.code, result.message) == (
            False,
            "method.failed.signature",
            PUBLIC_FAILURE,
        )


def test_without_a_fetcher_the_guard_refuses_a_private_key_set_url() -> None:
    # A method built with no server fetcher still goes through the SSRF guard, private
    # addresses refused: no request reaches the loopback key set server.
    with jwks_server(jwks(EC_KEY)) as server:
        method = idp(server.url, Environment())
        with pytest.raises(MethodUnavailable) as caught:
            method.verify(None, token(NOW), now=NOW)
        assert caught.value.code == "method.unavailable.keys"
        assert "refused" in caught.value.message
        assert server.requests == 0
