"""A plug-in as a third party would write it, outside Juncture's source: one method kind and
one enricher, registered when the module is imported (``JUNCTURE_PLUGINS``).

- ``magic_word``: a word Juncture makes at enrollment and shows once; the proof is the word.
  Default AAL 2, ``amr`` ``kba``. The record keeps only its SHA-256 digest.
- ``fraud``: an enricher that scores the request's IP (``fraud.score``: 90 inside
  203.0.113.0/24, 10 elsewhere; absent without an IP) and names its model (``fraud.model``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Self

import msgspec

from juncture.methods import register_kind
from juncture.methods.base import (
    NO_CONTEXT,
    Context,
    EnrolRequest,
    Environment,
    MethodKind,
    NewCredential,
    Options,
    Proof,
    ProofError,
    Result,
    default_amr,
    failure,
    parse_options,
)
from juncture.policy.schema import Field, Variable
from juncture.signals import Request, register_enricher

RISKY = ipaddress.ip_network("203.0.113.0/24")


class MagicRecord(msgspec.Struct, frozen=True, kw_only=True):
    digest: str
    created_at: datetime


class MagicWord:
    kind: ClassVar[str] = "magic_word"

    def __init__(self, *, name: str, aal: int, options: Options) -> None:
        self.name = name
        self.aal = aal
        self.amr = options.amr if options.amr is not None else default_amr(self.kind)

    @classmethod
    def configure(
        cls, *, name: str, aal: int, options: Mapping[str, Any], env: Environment
    ) -> Self:
        return cls(name=name, aal=aal, options=parse_options(name, cls.kind, options, Options))

    def verify(
        self, record: MagicRecord, proof: object, *, now: datetime, context: Context = NO_CONTEXT
    ) -> Result[MagicRecord]:
        if not isinstance(proof, str) or not proof:
            raise ProofError("a magic word is a non-empty string")
        digest = hashlib.sha256(proof.encode()).hexdigest()
        if not hmac.compare_digest(digest, record.digest):
            return failure("method.failed.mismatch")
        made = Proof(method=self.name, kind=self.kind, aal=self.aal, amr=self.amr, at=now)
        return Result(ok=True, code="ok", proof=made)


def _enrol(method: MagicWord, request: EnrolRequest) -> NewCredential:
    """The subject's chosen word (the enrollment's ``input.word``), or one made and shown once."""
    chosen = request.given.get("input", {}).get("word")
    if chosen is not None and (not isinstance(chosen, str) or len(chosen) < 8):
        raise ProofError("a chosen magic word is a string of 8 characters or more")
    word = chosen or secrets.token_hex(8)
    digest = hashlib.sha256(word.encode()).hexdigest()
    return NewCredential(
        record=MagicRecord(digest=digest, created_at=request.now),
        shown=None if chosen else {"word": word},
    )


KIND = register_kind(
    MethodKind(
        name="magic_word",
        aal=2,
        amr=("kba",),
        implementation=MagicWord,
        record=MagicRecord,
        confirmed_at_enrollment=True,
        enrol=_enrol,
    )
)


class FraudScore:
    provides = Variable(
        name="fraud",
        owned=True,
        fields={
            "score": Field(type="int", written=int),
            "model": Field(type="string", written=str),
        },
    )

    def enrich(self, request: Request) -> Mapping[str, Any]:
        if request.ip is None:
            return {}
        return {"score": 90 if request.ip in RISKY else 10, "model": "test-1"}


ENRICHER = register_enricher(FraudScore())
