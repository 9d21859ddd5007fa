"""Device attestation: a signed posture statement, fresh enough, from the configured issuer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from juncture.methods import Context
from juncture.methods.base import PUBLIC_FAILURE, ConfigError, ProofError
from juncture.methods.device_attestation import DeviceAttestation

from .conftest import NOW, make
from .issuer import EC_KEY, OTHER_EC, RSA_KEY, jwks, sign, unsigned

MDM = "https://mdm.example.com"
T = int(NOW.timestamp())


def mdm(**options: Any) -> DeviceAttestation:
    base = {"issuer": MDM, "algorithms": ["ES256"], "jwks": jwks(EC_KEY), "max_age": "15m"}
    return make("device_attestation", name="laptop", **{**base, **options})


def statement(**extra: Any) -> dict[str, Any]:
    base = {
        "iss": MDM,
        "device_id": "dev-42",
        "managed": True,
        "compliant": True,
        "observed_at": T - 60,
    }
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def refused(result: Any, code: str) -> None:
    assert (result.ok, result.code, result.message) == (False, code, PUBLIC_FAILURE)
    assert result.posture is None and result.proof is None


def test_a_fresh_statement_gives_the_posture_and_a_proof() -> None:
    result = mdm().verify(None, sign(statement()), now=NOW)
    assert result.ok
    posture = result.posture
    assert (posture.device_id, posture.managed, posture.compliant) == ("dev-42", True, True)
    assert posture.at == NOW - timedelta(minutes=1)
    assert posture.source == "attestation"
    proof = result.proof
    assert (proof.method, proof.kind, proof.aal, proof.amr) == (
        "laptop",
        "device_attestation",
        0,
        (),
    )
    assert proof.at == posture.at


def test_an_unmanaged_device_passes_unless_the_method_requires_management() -> None:
    token = sign(statement(managed=False, compliant=False))
    result = mdm().verify(None, token, now=NOW)
    assert result.ok and not result.posture.managed and not result.posture.compliant
    refused(mdm(require_managed=True).verify(None, token, now=NOW), "method.failed.posture")
    refused(
        mdm(require_compliant=True).verify(None, sign(statement(compliant=False)), now=NOW),
        "method.failed.posture",
    )


def test_stale_and_future_statements_are_refused() -> None:
    refused(
        mdm().verify(None, sign(statement(observed_at=T - 15 * 60 - 1)), now=NOW),
        "method.failed.stale",
    )
    assert mdm().verify(None, sign(statement(observed_at=T - 15 * 60)), now=NOW).ok
    refused(
        mdm().verify(None, sign(statement(observed_at=T + 120)), now=NOW),
        "method.failed.not_yet_valid",
    )
    refused(mdm().verify(None, sign(statement(exp=T - 3600)), now=NOW), "method.failed.expired")


@pytest.mark.parametrize(
    "extra",
    [
        {"device_id": None},
        {"device_id": ""},
        {"device_id": 7},
        {"managed": "yes"},
        {"compliant": None},
        {"observed_at": None},
        {"observed_at": "today"},
    ],
)
def test_missing_or_mistyped_claims(extra: dict[str, Any]) -> None:
    refused(mdm().verify(None, sign(statement(**extra)), now=NOW), "method.failed.claims")


def test_forged_and_foreign_statements() -> None:
    refused(mdm().verify(None, unsigned(statement()), now=NOW), "method.failed.algorithm")
    refused(mdm().verify(None, sign(statement(), key=OTHER_EC), now=NOW), "method.failed.signature")
    refused(mdm().verify(None, sign(statement(), key=RSA_KEY), now=NOW), "method.failed.algorithm")
    refused(
        mdm().verify(None, sign(statement(iss="https://other.example")), now=NOW),
        "method.failed.issuer",
    )


def test_subject_nonce_and_audience_bindings() -> None:
    bound = sign(statement(sub="u1", nonce="n1"))
    assert mdm().verify(None, bound, now=NOW, context=Context(subject="u1", nonce="n1")).ok
    refused(
        mdm().verify(None, bound, now=NOW, context=Context(subject="u2")), "method.failed.subject"
    )
    refused(mdm().verify(None, bound, now=NOW, context=Context(nonce="n2")), "method.failed.nonce")
    with_aud = mdm(audience="juncture")
    refused(with_aud.verify(None, sign(statement()), now=NOW), "method.failed.audience")
    assert with_aud.verify(None, sign(statement(aud="juncture")), now=NOW).ok


@pytest.mark.parametrize("proof", [None, "", 1, "a.b", {"device_id": "x"}])
def test_malformed_statements(proof: object) -> None:
    with pytest.raises(ProofError):
        mdm().verify(None, proof, now=NOW)


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"max_age": "never"}, "method.config.value"),
        ({"require_managed": 1}, "method.config.type"),
        ({"maxage": "1h"}, "method.config.unknown_option"),
        ({"algorithms": ["HS256"]}, "method.config.value"),
    ],
)
def test_configuration_errors(options: dict[str, Any], code: str) -> None:
    with pytest.raises(ConfigError) as caught:
        mdm(**options)
    assert caught.value.code == code
