"""Compile CEL conditions into plain Python callables, with a reference interpreter beside them.

A condition is compiled once per policy version into Python source, typed by the
fact schema (`schema.py`) so that comparisons of known facts become bare Python
operators, and dynamic values go through the checked operators of
`cel_runtime`. The compiled function is the fast path. It never returns a
result that CEL would not; when anything unusual happens (a missing fact, a
type error, an error that CEL's commutative ``&&``/``||`` would absorb) it
raises, and the condition is evaluated again by the reference interpreter
(`cel_interpret`), which applies CEL's error semantics exactly and names the missing
fact. The differential tests hold the two to the same answers.

This module is the entry point: `compile_condition` parses (`cel_ast`), checks
(`cel_check`) and generates the fast path (`cel_compile`); `CompiledCondition` runs it.
"""

from __future__ import annotations

import ipaddress
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from juncture.errors import Location, PolicyError
from juncture.policy import cel_runtime as rt
from juncture.policy.cel_ast import CelSyntaxError, Node, parse
from juncture.policy.cel_check import Checker, static_type
from juncture.policy.cel_compile import RUNTIME, Generator
from juncture.policy.cel_interpret import Interpreter
from juncture.policy.cel_runtime import Activation

__all__ = ["CompiledCondition", "compile_condition"]


class CompiledCondition:
    """A condition ready to run: ``condition(activation) -> bool``.

    Raises `rt.CelEvalError` when CEL says the condition is an error (for example a
    missing fact it reads without testing `has()` first).
    """

    __slots__ = ("_fast", "location", "networks", "node", "text", "variables")

    def __init__(
        self,
        text: str,
        location: Location,
        node: Node,
        fast: Callable[[Activation], bool],
        variables: frozenset[str],
        networks: Mapping[str, tuple[Any, ...]],
    ) -> None:
        self.text = text
        self.location = location
        self.node = node
        self._fast = fast
        self.variables = variables
        self.networks = networks

    def __call__(self, activation: Activation) -> bool:
        try:
            result = self._fast(activation)
        except Exception:  # any surprise: let the reference interpreter decide exactly
            return self.reference(activation)
        if result is True or result is False:
            return result
        # INVARIANT: a condition answers a bool or is an error. The fast path relies on facts
        # having their schema types; if one did not, the reference interpreter decides.
        return self.reference(activation)

    def reference(self, activation: Activation) -> bool:
        """Evaluate with the reference interpreter only (exact CEL semantics)."""
        try:
            return rt.as_bool(Interpreter(activation, self.networks).run(self.node, {}))
        except rt.CelEvalError:
            raise
        except RecursionError:
            raise rt.CelEvalError("condition is too deep to evaluate") from None
        except Exception as exc:
            raise rt.CelEvalError(f"internal error: {type(exc).__name__}") from None


def parse_networks(networks: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[Any, ...]]:
    return {
        name: tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        for name, cidrs in networks.items()
    }


def compile_condition(
    text: str,
    location: Location,
    networks: Mapping[str, tuple[Any, ...]] | None = None,
    *,
    forbid: frozenset[str] = frozenset(),
) -> tuple[CompiledCondition | None, list[PolicyError]]:
    """Parse, check and compile one condition.

    ``networks`` maps the journey's network names to parsed networks (for
    ``in_network``); ``forbid`` names variables this condition may not read (risk
    rules may not read ``risk``). Returns the compiled condition, or None with the
    errors that prevent it.
    """
    nets = networks or {}
    try:
        node = parse(text)
    except CelSyntaxError as exc:
        # The location is where the condition starts; the message says where in it, since
        # folded and quoted YAML scalars do not map columns one to one.
        loc = location
        return None, [
            PolicyError(
                f"{exc.message} in `{text}`" if exc.code == "policy.cel.syntax" else exc.message,
                code=exc.code,
                location=loc,
            )
        ]
    checker = Checker(text, location, nets)
    checker.check(node)
    for name in sorted(checker.variables & forbid):
        checker.error(f"this condition may not read `{name}`", "policy.cel.unknown_variable")
    result_type = static_type(node, frozenset())
    if result_type not in (None, "bool"):
        checker.error(f"condition produces {result_type}, not bool", "policy.cel.type")
    if checker.errors:
        return None, checker.errors
    generator = Generator(nets)
    try:
        body = generator.boolean(node, frozenset())
        source = f"def _condition(v):\n    return {body}\n"
        namespace: dict[str, Any] = {
            **RUNTIME,
            **generator.constants,
            "__builtins__": {"all": all, "any": any, "sum": sum},
        }
        with warnings.catch_warnings():
            # `null.a` compiles to `None['a']`: an evaluation error, not a warning to print
            warnings.simplefilter("ignore", SyntaxWarning)
            code = compile(source, f"<condition {location}>", "exec")
        exec(code, namespace)  # noqa: S102
    except (RecursionError, SyntaxError, MemoryError):
        return None, [
            PolicyError(
                "condition is too complex", code="policy.cel.too_complex", location=location
            )
        ]
    fast = namespace["_condition"]
    return CompiledCondition(text, location, node, fast, frozenset(checker.variables), nets), []


# Types re-exported for callers that assemble activations.
Timestamp = datetime
Duration = timedelta
