"""Passkeys and security keys: WebAuthn Level 3 ceremonies, with the `webauthn` package.

Registration: `WebAuthn.begin_registration` returns the creation options for
``navigator.credentials.create()`` and the state to keep with the challenge;
`WebAuthn.finish_registration` checks the response against that state and returns the
credential record. Authentication: `WebAuthn.begin_authentication` returns the request
options and state; `WebAuthn.verify` checks an assertion against the stored record.
`credential_id` reads the credential id of an assertion, to find its record.

The client data's type, challenge and origin and the authenticator data's RP id hash and
flags are checked here first, each with its own failure code; the library then checks
everything again and verifies the signature. The signature counter must increase when
either the stored or the new value is non-zero (WebAuthn §6.1.1), else the authenticator
may be cloned: the verification fails with ``method.failed.sign_count``.

Assurance (NIST SP 800-63B-4 §2.2.2, §2.3.2): with user verification the authenticator is
a multi-factor cryptographic one, AAL2; AAL3 also needs a hardware-bound, non-exportable
key, which the operator asserts with the option ``hardware_bound: true`` and which a
backup-eligible (synced) credential never is. Without user verification it is a
single-factor cryptographic authenticator: AAL1 on its own. ``amr``: ``hwk`` for a
hardware-bound key, else ``swk``; ``user`` (presence is always tested); ``mfa`` with
user verification.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

import msgspec
import webauthn as wa
from webauthn.helpers import (
    parse_attestation_object,
    parse_authentication_credential_json,
    parse_authenticator_data,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorAttachment,
    AuthenticatorDataFlags,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    ClientDataType,
    CollectedClientData,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from juncture.methods.base import (
    NO_CONTEXT,
    ConfigError,
    Confirmation,
    Context,
    EnrollmentError,
    EnrolRequest,
    Environment,
    Issued,
    MethodKind,
    NewCredential,
    Options,
    Proof,
    ProofError,
    Result,
    decode_state,
    duration_option,
    failure,
    parse_options,
    require_aware,
)
from juncture.policy.kinds import built_in

Requirement = Literal["required", "preferred", "discouraged"]
_MALFORMED = (
    WebAuthnException,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    RecursionError,
)
_REFUSED_ALGS = {COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_1}


class WebAuthnOptions(Options, frozen=True, kw_only=True, forbid_unknown_fields=True):
    rp_id: str
    origins: tuple[str, ...]
    rp_name: str | None = None
    user_verification: Requirement = "required"
    hardware_bound: bool = False
    resident_key: Requirement = "preferred"
    attachment: Literal["platform", "cross-platform"] | None = None
    timeout: int | str = "5m"
    algorithms: tuple[int, ...] = (-7, -8, -257)


class PasskeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One registered credential of a subject (a subject may have several)."""

    credential_id: bytes
    subject: str
    user_handle: bytes
    public_key: bytes
    sign_count: int
    aaguid: str
    backup_eligible: bool
    backed_up: bool
    created_at: datetime
    transports: tuple[str, ...] = ()
    last_used_at: datetime | None = None


class RegistrationState(msgspec.Struct, frozen=True, kw_only=True, tag="webauthn.create"):
    challenge: bytes
    subject: str
    user_handle: bytes
    expires_at: datetime


class AuthenticationState(msgspec.Struct, frozen=True, kw_only=True, tag="webauthn.get"):
    challenge: bytes
    expires_at: datetime
    allowed: tuple[bytes, ...] = ()


class WebAuthn:
    """Public-key credentials bound to the relying party's origins (phishing-resistant)."""

    kind: ClassVar[str] = "webauthn"

    def __init__(self, *, name: str, aal: int, options: WebAuthnOptions, timeout: int) -> None:
        self.name = name
        self.aal = aal
        self.options = options
        self.timeout = timeout
        self.amr: tuple[str, ...] = options.amr or ("hwk" if options.hardware_bound else "swk",)
        self._rp_hash = hashlib.sha256(options.rp_id.encode()).digest()

    @classmethod
    def configure(
        cls, *, name: str, aal: int, options: Mapping[str, Any], env: Environment
    ) -> Self:
        opts = parse_options(name, cls.kind, options, WebAuthnOptions)
        rp_id = opts.rp_id
        if not rp_id or rp_id != rp_id.lower() or any(c in rp_id for c in "/:@ "):
            raise ConfigError(f"method `{name}`: `rp_id` must be a lowercase host name")
        if not opts.origins:
            raise ConfigError(f"method `{name}`: `origins` needs at least one origin")
        for origin in opts.origins:
            _check_origin(name, origin, rp_id)
        for alg in opts.algorithms:
            try:
                known = COSEAlgorithmIdentifier(alg)
            except ValueError:
                known = None
            if known is None or known in _REFUSED_ALGS:
                raise ConfigError(f"method `{name}`: unsupported COSE algorithm `{alg}`")
        timeout = duration_option(name, "timeout", opts.timeout)
        return cls(name=name, aal=aal, options=opts, timeout=timeout)

    # -- registration ---------------------------------------------------------------------------

    def begin_registration(
        self,
        *,
        subject: str,
        user_name: str,
        now: datetime,
        display_name: str | None = None,
        user_handle: bytes | None = None,
        existing: Sequence[PasskeyRecord] = (),
    ) -> Issued:
        """Creation options for the browser, and the state to keep with the challenge.

        ``user_handle`` is the subject's WebAuthn user id (random, at most 64 bytes, the same
        for all their credentials); a new one is drawn when None. ``existing`` credentials
        are excluded so an authenticator is not registered twice.
        """
        require_aware(now)
        if not subject or not user_name:
            raise EnrollmentError("a passkey registration needs a subject and a user name")
        handle = user_handle or secrets.token_bytes(32)
        if len(handle) > 64:
            raise EnrollmentError("a WebAuthn user handle has at most 64 bytes")
        o = self.options
        challenge = secrets.token_bytes(32)
        options = wa.generate_registration_options(
            rp_id=o.rp_id,
            rp_name=o.rp_name or o.rp_id,
            user_name=user_name,
            user_id=handle,
            user_display_name=display_name,
            challenge=challenge,
            timeout=self.timeout * 1000,
            authenticator_selection=AuthenticatorSelectionCriteria(
                authenticator_attachment=(
                    AuthenticatorAttachment(o.attachment) if o.attachment else None
                ),
                resident_key=ResidentKeyRequirement(o.resident_key),
                require_resident_key=o.resident_key == "required",
                user_verification=UserVerificationRequirement(o.user_verification),
            ),
            exclude_credentials=[_descriptor(c) for c in existing],
            supported_pub_key_algs=[COSEAlgorithmIdentifier(a) for a in o.algorithms],
        )
        expires_at = now + timedelta(seconds=self.timeout)
        state = RegistrationState(
            challenge=challenge, subject=subject, user_handle=handle, expires_at=expires_at
        )
        public = json.loads(wa.options_to_json(options))
        return Issued(public=public, state=msgspec.json.encode(state), expires_at=expires_at)

    def finish_registration(
        self, response: object, *, state: bytes | None, now: datetime
    ) -> Result[PasskeyRecord]:
        """Check a ``navigator.credentials.create()`` response; the new record on success."""
        require_aware(now)
        st = decode_state(state, RegistrationState, "WebAuthn registration")
        credential = _parse_registration(response)
        try:
            client = parse_client_data_json(credential.response.client_data_json)
            attestation = parse_attestation_object(credential.response.attestation_object)
        except _MALFORMED:
            raise ProofError("the WebAuthn registration response is malformed") from None
        flags = attestation.auth_data.flags
        refused = self._screen(client, ClientDataType.WEBAUTHN_CREATE, st.challenge)
        refused = refused or self._screen_flags(attestation.auth_data.rp_id_hash, flags)
        if now > st.expires_at:
            refused = refused or "method.failed.expired"
        if refused:
            return failure(refused)
        try:
            verified = wa.verify_registration_response(
                credential=credential,
                expected_challenge=st.challenge,
                expected_rp_id=self.options.rp_id,
                expected_origin=list(self.options.origins),
                require_user_verification=self.options.user_verification == "required",
                supported_pub_key_algs=[
                    COSEAlgorithmIdentifier(a) for a in self.options.algorithms
                ],
            )
        except _MALFORMED:
            return failure("method.failed.attestation")
        transports = tuple(t.value for t in credential.response.transports or ())
        record = PasskeyRecord(
            credential_id=verified.credential_id,
            subject=st.subject,
            user_handle=st.user_handle,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            aaguid=verified.aaguid,
            backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
            backed_up=verified.credential_backed_up,
            created_at=now,
            transports=transports,
        )
        return Result(ok=True, code="ok", record=record)

    # -- authentication -------------------------------------------------------------------------

    def begin_authentication(
        self, *, now: datetime, credentials: Sequence[PasskeyRecord] = ()
    ) -> Issued:
        """Request options for ``navigator.credentials.get()``, and the state to keep.

        With no ``credentials`` the browser offers any discoverable credential for the RP id.
        """
        require_aware(now)
        challenge = secrets.token_bytes(32)
        options = wa.generate_authentication_options(
            rp_id=self.options.rp_id,
            challenge=challenge,
            timeout=self.timeout * 1000,
            allow_credentials=[_descriptor(c) for c in credentials],
            user_verification=UserVerificationRequirement(self.options.user_verification),
        )
        expires_at = now + timedelta(seconds=self.timeout)
        state = AuthenticationState(
            challenge=challenge,
            expires_at=expires_at,
            allowed=tuple(c.credential_id for c in credentials),
        )
        public = json.loads(wa.options_to_json(options))
        return Issued(public=public, state=msgspec.json.encode(state), expires_at=expires_at)

    @staticmethod
    def credential_id(proof: object) -> bytes:
        """The credential id an assertion names, to look its record up."""
        return _parse_assertion(proof).raw_id

    @staticmethod
    def user_handle(proof: object) -> bytes | None:
        """The user handle an assertion carries (a discoverable credential's must: WebAuthn
        L3 §7.2 step 6), None when it has none."""
        return _parse_assertion(proof).response.user_handle

    def verify(
        self, record: PasskeyRecord, proof: object, *, now: datetime, context: Context = NO_CONTEXT
    ) -> Result[PasskeyRecord]:
        """Check a ``navigator.credentials.get()`` assertion against its stored record.

        ``context.state`` must be the state `begin_authentication` returned.
        """
        require_aware(now)
        st = decode_state(context.state, AuthenticationState, "WebAuthn authentication")
        credential = _parse_assertion(proof)
        try:
            client = parse_client_data_json(credential.response.client_data_json)
            data = parse_authenticator_data(credential.response.authenticator_data)
        except _MALFORMED:
            raise ProofError("the WebAuthn authentication response is malformed") from None
        handle = credential.response.user_handle
        refused = None
        if credential.raw_id != record.credential_id or (
            st.allowed and credential.raw_id not in st.allowed
        ):
            refused = "method.failed.credential"
        elif handle is not None and handle != record.user_handle:
            refused = "method.failed.credential"
        elif context.subject is not None and context.subject != record.subject:
            refused = "method.failed.subject"
        refused = refused or self._screen(client, ClientDataType.WEBAUTHN_GET, st.challenge)
        refused = refused or self._screen_flags(data.rp_id_hash, data.flags)
        if now > st.expires_at:
            refused = refused or "method.failed.expired"
        if refused:
            return failure(refused)
        try:
            wa.verify_authentication_response(
                credential=credential,
                expected_challenge=st.challenge,
                expected_rp_id=self.options.rp_id,
                expected_origin=list(self.options.origins),
                credential_public_key=record.public_key,
                # the counter is checked below, once the signature is known to be good
                credential_current_sign_count=0,
                require_user_verification=self.options.user_verification == "required",
            )
        except _MALFORMED:
            return failure("method.failed.signature")
        if (data.sign_count or record.sign_count) and data.sign_count <= record.sign_count:
            return failure("method.failed.sign_count")
        updated = msgspec.structs.replace(
            record, sign_count=data.sign_count, backed_up=data.flags.bs, last_used_at=now
        )
        return Result(
            ok=True, code="ok", record=updated, proof=self._proof(record, data.flags, now)
        )

    # -- helpers --------------------------------------------------------------------------------

    def _screen(
        self, client: CollectedClientData, ceremony: ClientDataType, challenge: bytes
    ) -> str | None:
        if client.type != ceremony or not secrets.compare_digest(client.challenge, challenge):
            return "method.failed.challenge"
        if client.origin not in self.options.origins:
            return "method.failed.origin"
        return None

    def _screen_flags(self, rp_id_hash: bytes, flags: AuthenticatorDataFlags) -> str | None:
        if not secrets.compare_digest(rp_id_hash, self._rp_hash):
            return "method.failed.rp_id"
        if not flags.up:
            return "method.failed.user_presence"
        if self.options.user_verification == "required" and not flags.uv:
            return "method.failed.user_verification"
        return None

    def _proof(self, record: PasskeyRecord, flags: AuthenticatorDataFlags, now: datetime) -> Proof:
        hardware = self.options.hardware_bound and not record.backup_eligible and not flags.be
        assessed = (3 if hardware else 2) if flags.uv else 1
        amr = self.options.amr or (
            ("hwk" if hardware else "swk", "user", *(("mfa",) if flags.uv else ()))
        )
        return Proof(method=self.name, kind=self.kind, aal=min(self.aal, assessed), amr=amr, at=now)


def _response(response: object) -> str | dict[str, Any]:
    if not isinstance(response, (str, dict)) or not response:
        raise ProofError("a WebAuthn response must be a JSON object")
    return response


def _parse_assertion(response: object) -> AuthenticationCredential:
    try:
        return parse_authentication_credential_json(_response(response))
    except _MALFORMED:
        raise ProofError("the WebAuthn authentication response is malformed") from None


def _parse_registration(response: object) -> RegistrationCredential:
    try:
        return parse_registration_credential_json(_response(response))
    except _MALFORMED:
        raise ProofError("the WebAuthn registration response is malformed") from None


def _descriptor(record: PasskeyRecord) -> PublicKeyCredentialDescriptor:
    transports = []
    for name in record.transports:
        try:
            transports.append(AuthenticatorTransport(name))
        except ValueError:
            continue
    return PublicKeyCredentialDescriptor(id=record.credential_id, transports=transports or None)


def _check_origin(name: str, origin: str, rp_id: str) -> None:
    parts = urlsplit(origin)
    host = parts.hostname or ""
    local = host == "localhost"
    if (
        parts.scheme not in ("https", "http")
        or (parts.scheme == "http" and not local)
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username
        or not (host == rp_id or host.endswith("." + rp_id))
        or origin.endswith("/")
    ):
        raise ConfigError(
            f"method `{name}`: origin `{origin}` must be `https://HOST[:PORT]` with HOST the "
            f"rp_id `{rp_id}` or a subdomain of it (plain http only for localhost)"
        )


class PendingWebAuthn(msgspec.Struct, frozen=True, kw_only=True, tag="pending.webauthn"):
    """A passkey enrolled but not registered yet: the ceremony's state."""

    state: bytes


def _lookup(proof: object) -> str:
    """The directory's key of the passkey a proof names."""
    return _key(WebAuthn.credential_id(proof))


def _key(credential_id: bytes) -> str:
    return "webauthn:" + base64.urlsafe_b64encode(credential_id).rstrip(b"=").decode()


def _enrol(method: WebAuthn, request: EnrolRequest) -> NewCredential:
    passkeys = list(request.existing)
    issued = method.begin_registration(
        subject=request.subject,
        user_name=str(request.given.get("user_name") or request.subject),
        display_name=request.given.get("display_name"),
        now=request.now,
        existing=passkeys,
        user_handle=passkeys[0].user_handle if passkeys else None,
    )
    return NewCredential(record=PendingWebAuthn(state=issued.state), shown=issued.public)


def _confirm(
    method: WebAuthn, stored: bytes, proof: object, now: datetime, context: Context
) -> Confirmation:
    pending = msgspec.json.decode(stored, type=PendingWebAuthn)
    result = method.finish_registration(proof, state=pending.state, now=now)
    lookup = None
    if isinstance(result.record, PasskeyRecord):
        lookup = _key(result.record.credential_id)
    return Confirmation(result=result, record=result.record, lookup=lookup)


def _start(
    method: WebAuthn, records: Sequence[PasskeyRecord], challenge_id: str, now: datetime
) -> tuple[Issued, None]:
    return method.begin_authentication(now=now, credentials=list(records)), None


KIND = MethodKind.of(
    built_in("webauthn"),
    implementation=WebAuthn,
    record=PasskeyRecord,
    enrol=_enrol,
    confirm=_confirm,
    start=_start,
    lookup=_lookup,
)
