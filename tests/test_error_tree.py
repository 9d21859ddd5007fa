"""One error tree: every exception class Juncture defines derives from `JunctureError`, and a
`Refusal` is answered on the wire exactly as it says (status, code, detail, members, headers)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import msgspec
import pytest

import juncture
from juncture.api.problems import ApiError, problem_of
from juncture.errors import (
    CODES,
    STORE_RETRY_AFTER,
    AuthError,
    CodedRefusal,
    ConflictError,
    CorruptError,
    JunctureError,
    NotFound,
    NotFoundError,
    RateLimited,
    Refusal,
    RequestError,
    StateConflict,
    StoreError,
    Unavailable,
)

#: Exception classes outside the tree, each with why: internal control flow, caught where it
#: is raised and turned into something else before anyone outside sees it.
OUTSIDE_THE_TREE = {
    "juncture.policy.cel_ast.CelSyntaxError": "the CEL parser's own; the checker turns it "
    "into a PolicyError (`policy.cel.syntax`) with the journey's location",
    "juncture.policy.cel_runtime.CelEvalError": "a condition that fails to evaluate; the "
    "engine turns it into a deny (`decision.evaluation_error`): the pure core raises nothing",
    "juncture.methods.tokens.Refused": "a token check's early exit; the method turns it into "
    "a failed Result with its `method.failed.*` code",
    "juncture.events.poll.PollFailed": "a poll of a remote transmitter that failed; the poller "
    "logs it and polls again (its `status` is the remote's HTTP status, not Juncture's answer)",
    "juncture.analysis.symbolic.Opaque": "not an error: a condition part beyond the invariant "
    "checker's translation; caught where it is raised, it becomes a free boolean",
    "juncture.waiting.WouldWait": "not an error: a decision tried on the event loop that would "
    "wait on the network is run again in a thread (api/boundary.py); a BaseException so that "
    "no service can take it for a failure",
}


def test_the_sdk_has_one_tree_of_its_own():
    """The application SDK stands alone (it imports no other juncture package: an import
    contract), so its errors cannot derive from the server's tree: they have their own root,
    `juncture.sdk.errors.JunctureError`, and every one of its exception classes is in it."""
    from juncture.sdk import errors as sdk_errors

    sdk = {n: k for n, k in _defined_exceptions().items() if n.startswith("juncture.sdk.")}
    assert "juncture.sdk.errors.JunctureUnavailable" in sdk, "the scan found nothing"
    assert [n for n, k in sdk.items() if not issubclass(k, sdk_errors.JunctureError)] == []
    assert not any(issubclass(k, JunctureError) for k in sdk.values())


def _defined_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(juncture.__path__, "juncture."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def test_every_exception_class_is_in_the_one_tree():
    defined = _defined_exceptions()
    assert "juncture.api.problems.ApiError" in defined, "the scan found nothing: out of date"
    outside = sorted(
        name
        for name, kind in defined.items()
        if not issubclass(kind, JunctureError) and not name.startswith("juncture.sdk.")
    )
    assert outside == sorted(OUTSIDE_THE_TREE), (
        "an exception class outside JunctureError: put it in the tree (juncture/errors.py), "
        "or list it in OUTSIDE_THE_TREE with why"
    )


def test_the_families_carry_their_status_and_a_registered_code():
    families = {
        RequestError: 400, AuthError: 401, NotFoundError: 404, StateConflict: 409,
        RateLimited: 429, Unavailable: 503,
    }  # fmt: skip
    for family, status in families.items():
        assert issubclass(family, Refusal)
        error = family("why")
        assert (error.status, error.message, error.extra, error.retry_after) == (
            status, "why", {}, None,
        )  # fmt: skip
        assert error.code in CODES
    assert AuthError("no", code="auth.forbidden", status=403).status == 403


def test_the_store_errors_are_unavailable_and_never_show_their_text():
    for kind in (StoreError, CorruptError, ConflictError, NotFound):
        assert issubclass(kind, Unavailable)
    error = StoreError("cannot open `/secret/path`: disk I/O error")
    assert str(error) == "cannot open `/secret/path`: disk I/O error"  # logged as it is
    assert (error.status, error.code) == (503, "unavailable.store")
    assert error.detail == "the store is unavailable; try again"
    corrupt = CorruptError("corrupt session record: ...")
    assert corrupt.code == "unavailable.corrupt"
    assert corrupt.detail == "a stored record cannot be read"
    assert str(NotFound("user", "ana")) == str(Exception("user", "ana"))  # several args kept


def test_a_store_failure_is_answered_503_with_retry_after_a_corrupt_record_without():
    answer = problem_of(StoreError("postgres: no database connection free in time"))
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, str(STORE_RETRY_AFTER))
    body = msgspec.json.decode(answer.body)
    assert (body["code"], body["detail"]) == (
        "unavailable.store",
        "the store is unavailable; try again",
    )
    corrupt = problem_of(CorruptError("corrupt session record: ..."))
    assert corrupt.status_code == 503 and "Retry-After" not in corrupt.headers


def test_a_coded_refusal_takes_any_registered_code_and_status():
    error = CodedRefusal("auth.locked", "locked", 429, retry_after=30, extra={"n": 1})
    assert (error.code, error.status, error.retry_after, error.extra) == (
        "auth.locked", 429, 30, {"n": 1},
    )  # fmt: skip
    with pytest.raises(ValueError, match="unregistered error code"):
        CodedRefusal("made.up", "x", 400)


def test_a_refusal_is_answered_as_it_says():
    answer = problem_of(StateConflict("in use", code="version.removes_used",
                                      extra={"removals": [{"kind": "journey"}]}))  # fmt: skip
    assert answer.status_code == 409
    assert answer.media_type == "application/problem+json"
    assert msgspec.json.decode(answer.body) == {
        "type": "urn:juncture:error:version.removes_used",
        "title": "Conflict",
        "status": 409,
        "code": "version.removes_used",
        "detail": "in use",
        "removals": [{"kind": "journey"}],
    }
    unauthorized = problem_of(ApiError(401, "auth.invalid", "the key is not valid"))
    assert unauthorized.headers["WWW-Authenticate"] == 'Bearer realm="juncture"'
    busy = problem_of(CodedRefusal("auth.busy", "busy", 429, retry_after=2))
    assert busy.headers["Retry-After"] == "2"
    store = problem_of(StoreError("sqlite: database is locked"))
    assert msgspec.json.decode(store.body)["detail"] == "the store is unavailable; try again"
