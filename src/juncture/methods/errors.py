"""The errors of authentication methods: what is not a verification outcome (malformed input,
bad configuration, an unreadable stored record, a key source or mail server that is down),
each with a stable ``method.*`` code of the central registry (`juncture.errors`)."""

from __future__ import annotations

from juncture.errors import CODES as ERROR_CODES
from juncture.errors import ConfigError as ConfigError
from juncture.errors import MethodError as MethodError
from juncture.errors import MethodUnavailable as MethodUnavailable
from juncture.errors import ProofError as ProofError

#: This package's codes: the ``method.*`` part of the central registry (`juncture.errors`).
CODES: dict[str, str] = {
    code: text for code, text in ERROR_CODES.items() if code.startswith("method.")
}


class StateError(MethodError):
    """A stored credential record or challenge state cannot be used (a server-side fault)."""

    code = "method.record.invalid"
    http_status = 500


class EnrollmentError(MethodError):
    """An enrollment input is refused; the message is fit to show the person enrolling."""

    code = "method.enrollment.invalid"
    http_status = 400
