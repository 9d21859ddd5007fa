"""The errors of authentication methods: what is not a verification outcome (malformed input,
bad configuration, an unreadable stored record, a key source or mail server that is down),
each with a stable ``method.*`` code of the central registry (`juncture.errors`)."""

from __future__ import annotations

from juncture.errors import CODES as ERROR_CODES
from juncture.errors import JunctureError

#: This package's codes: the ``method.*`` part of the central registry (`juncture.errors`).
CODES: dict[str, str] = {
    code: text for code, text in ERROR_CODES.items() if code.startswith("method.")
}


class MethodError(JunctureError):
    """An error of an authentication method, with a stable ``method.*`` code."""

    code = "method.proof.malformed"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            if code not in CODES:
                raise ValueError(f"unregistered method error code `{code}`")
            self.code = code  # type: ignore[misc]


class ConfigError(MethodError):
    """A method's options or the server configuration it needs are wrong."""

    code = "method.config.value"
    http_status = 400


class ProofError(MethodError):
    """The submitted proof is malformed: the message says which shape was expected."""

    code = "method.proof.malformed"
    http_status = 400


class StateError(MethodError):
    """A stored credential record or challenge state cannot be used (a server-side fault)."""

    code = "method.record.invalid"
    http_status = 500


class EnrollmentError(MethodError):
    """An enrollment input is refused; the message is fit to show the person enrolling."""

    code = "method.enrollment.invalid"
    http_status = 400


class MethodUnavailable(MethodError):
    """Something outside the method (a key source, a mail server) does not answer."""

    code = "method.unavailable.keys"
    http_status = 503
