"""No import cycle anywhere in ``src/juncture``, counting the imports made only for type
checking and those inside functions: every module can be read (and replaced) from the bottom
up. import-linter (`make layers`) holds the direction of the layers; this holds the rest."""

from __future__ import annotations

from .imports import cycles, graph


def test_no_module_of_the_package_imports_itself_round_a_cycle() -> None:
    found = cycles(graph())
    assert found == [], "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_the_reader_sees_function_and_type_checking_imports() -> None:
    edges = graph()
    # `juncture serve` imports the server inside the command's function
    assert "juncture.api.server" in edges["juncture.cli.serve"]
    # methods/base.py names the mail sender only under `if TYPE_CHECKING:`
    assert "juncture.methods.delivery" in edges["juncture.methods.base"]
    assert all(targets <= set(edges) for targets in edges.values())


def test_a_cycle_is_found() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
