"""The safe YAML/JSON reader: every rejection, YAML 1.2 scalars and locations."""

from __future__ import annotations

import math

import pytest

from juncture.errors import PolicyError
from juncture.policy import source
from juncture.policy.source import MAX_DEPTH, MAX_FILE_BYTES, plain, read_json, read_yaml


def _err(text: str | bytes, file: str = "j.yaml") -> PolicyError:
    data = text.encode() if isinstance(text, str) else text
    with pytest.raises(PolicyError) as info:
        read_yaml(data, file)
    return info.value


def _where(err: PolicyError) -> tuple[str, int, int, str]:
    loc = err.location
    return (loc.file, loc.line, loc.col, loc.path)


def _yaml(text: str) -> object:
    return plain(read_yaml(text.encode(), "j.yaml"))


# -- limits and encoding ------------------------------------------------------------------------


def test_file_larger_than_the_limit_is_refused() -> None:
    err = _err(b"a" * (MAX_FILE_BYTES + 1))
    assert err.code == "policy.file.too_large"
    assert err.location.file == "j.yaml"


def test_file_at_the_limit_is_read() -> None:
    assert _yaml("a" * MAX_FILE_BYTES) == "a" * MAX_FILE_BYTES


def test_non_utf8_is_refused_with_the_byte_offset() -> None:
    err = _err(b"a: \xff")
    assert err.code == "policy.file.encoding"
    assert "byte 3" in err.message


def test_json_shares_the_size_and_encoding_limits() -> None:
    with pytest.raises(PolicyError) as info:
        read_json(b"1" * (MAX_FILE_BYTES + 1), "d.json")
    assert info.value.code == "policy.file.too_large"
    with pytest.raises(PolicyError) as info:
        read_json(b'"\xc3"', "d.json")
    assert info.value.code == "policy.file.encoding"


# -- anchors, aliases, tags -----------------------------------------------------------------------


def test_anchor_is_refused_where_it_is_written() -> None:
    err = _err("a: 1\nb: &x 2\nc: *x\n")
    assert err.code == "policy.yaml.alias"
    assert _where(err) == ("j.yaml", 2, 4, "$.b")
    assert err.suggestion is not None


def test_alias_alone_is_refused() -> None:
    err = _err("a: {b: *c}")
    assert err.code == "policy.yaml.alias"
    assert _where(err)[1:] == (1, 8, "$.a.b")


def test_anchor_on_a_sequence_item_names_its_index() -> None:
    err = _err("- x\n- &a [1]\n- *a\n")
    assert err.code == "policy.yaml.alias"
    assert err.location.path == "$[1]"


def test_billion_laughs_is_refused_at_the_first_anchor() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    err = _err("\n".join(lines))
    assert err.code == "policy.yaml.alias"
    assert (err.location.line, err.location.path) == (1, "$.a")


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("a: !!python/object:os.system x", "tag:yaml.org,2002:python/object:os.system"),
        (
            "a: !!python/object/apply:os.system [ls]",
            "tag:yaml.org,2002:python/object/apply:os.system",
        ),
        ("a: !!python/name:os.system {}", "tag:yaml.org,2002:python/name:os.system"),
        ("a: !!binary aGk=", "tag:yaml.org,2002:binary"),
        ("a: !!int 3", "tag:yaml.org,2002:int"),
        ("a: !!set {x}", "tag:yaml.org,2002:set"),
        ("a: !custom x", "!custom"),
    ],
)
def test_tags_beyond_plain_data_are_refused(text: str, tag: str) -> None:
    err = _err(text)
    assert err.code == "policy.yaml.tag"
    assert f"`{tag}`" in err.message
    assert _where(err)[1:] == (1, 4, "$.a")


def test_tags_of_plain_data_are_accepted() -> None:
    assert _yaml("a: !!str 5\nb: ! 12\nc: !!map {x: 1}\nd: !!seq [1]") == {
        "a": "5",
        "b": "12",
        "c": {"x": 1},
        "d": [1],
    }


def test_tag_on_a_key_reports_the_parent_path() -> None:
    err = _err("x:\n  !!python/str k: v")
    assert err.code == "policy.yaml.tag"
    assert err.location.path == "$.x"


# -- keys -----------------------------------------------------------------------------------------


def test_duplicate_key_is_refused_at_the_repeat() -> None:
    err = _err("a: 1\nb: 2\na: 3\n")
    assert err.code == "policy.yaml.duplicate_key"
    assert "`a`" in err.message
    assert (err.location.line, err.location.col, err.location.path) == (3, 1, "$.a")


def test_duplicate_key_in_flow_mapping() -> None:
    err = _err("x: {a: 1, a: 2}")
    assert err.code == "policy.yaml.duplicate_key"
    assert (err.location.line, err.location.col, err.location.path) == (1, 11, "$.x.a")


@pytest.mark.parametrize("key", ["1", "0x10", "1.5", "true", "null", "~"])
def test_scalar_keys_that_are_not_strings_are_refused(key: str) -> None:
    err = _err(f"ok: 1\n{key}: v\n")
    assert err.code == "policy.yaml.key_type"
    assert err.suggestion == "quote the key"
    assert (err.location.line, err.location.col) == (2, 1)


def test_quoted_scalar_keys_are_strings() -> None:
    assert _yaml("'1': a\n\"true\": b") == {"1": "a", "true": "b"}


@pytest.mark.parametrize(
    ("text", "line", "col"),
    [
        ("{[1]: 2}", 1, 2),
        ("{{a: 1}: 2}", 1, 2),
        ("? [a]\n: b", 1, 3),
        ("? {a: 1}\n: b", 1, 3),
        ("x:\n  ? - a\n  : b", 2, 5),
    ],
)
def test_complex_keys_are_refused(text: str, line: int, col: int) -> None:
    err = _err(text)
    assert err.code == "policy.yaml.key_type"
    assert (err.location.line, err.location.col) == (line, col)


# -- nesting ------------------------------------------------------------------------------------


def test_flow_nesting_up_to_the_limit_is_read() -> None:
    value = _yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    for _ in range(MAX_DEPTH - 1):
        assert isinstance(value, list) and len(value) == 1
        value = value[0]
    assert value == []


def test_flow_nesting_past_the_limit_is_refused() -> None:
    err = _err("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert err.code == "policy.yaml.too_deep"
    assert (err.location.line, err.location.col) == (1, MAX_DEPTH + 1)
    assert err.location.path == "$" + "[0]" * MAX_DEPTH


def test_block_nesting_past_the_limit_is_refused() -> None:
    text = "".join(" " * i + f"k{i}:\n" for i in range(MAX_DEPTH)) + " " * MAX_DEPTH + "k: v\n"
    err = _err(text)
    assert err.code == "policy.yaml.too_deep"
    assert err.location.line == MAX_DEPTH + 1
    assert err.location.path.startswith("$.k0.k1.k2")


def test_very_deep_input_does_not_exhaust_the_stack() -> None:
    # libyaml stops at its own nesting limit (1000) before our tree sees the events
    err = _err("[" * 100_000)
    assert err.code in ("policy.yaml.too_deep", "policy.yaml.syntax")


# -- documents and syntax -----------------------------------------------------------------------


def test_multiple_documents_are_refused_at_the_second() -> None:
    err = _err("a: 1\n---\nb: 2\n")
    assert err.code == "policy.yaml.multiple_documents"
    assert (err.location.line, err.location.col, err.location.path) == (2, 1, "$")


def test_one_explicit_document_is_accepted() -> None:
    node = read_yaml(b"---\na: 1\n...\n", "j.yaml")
    assert plain(node) == {"a": 1}
    assert (node.location.line, node.location.col) == (2, 1)


@pytest.mark.parametrize(
    ("text", "line", "col", "words"),
    [
        ("a: [1, 2", 2, 1, "expected ',' or ']'"),
        ("a:\n  - b\n c: d", 3, 2, "did not find expected key"),
        ("a: - b", 1, 4, "block sequence entries are not allowed"),
        ("\t- a", 1, 1, "cannot start any token"),
    ],
)
def test_syntax_errors_carry_line_and_column(text: str, line: int, col: int, words: str) -> None:
    err = _err(text)
    assert err.code == "policy.yaml.syntax"
    assert (err.location.file, err.location.line, err.location.col) == ("j.yaml", line, col)
    assert words in err.message
    assert not err.message.endswith(".")


def test_syntax_error_without_a_mark(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def __init__(self, text: str) -> None:
            pass

        def get_event(self) -> None:
            raise source.yaml.MarkedYAMLError(problem=None, problem_mark=None)

    monkeypatch.setattr(source, "_Parser", Broken)
    err = _err("a: 1")
    assert err.code == "policy.yaml.syntax"
    assert err.message == "invalid YAML: syntax error"
    assert (err.location.line, err.location.col) == (0, 0)


@pytest.mark.parametrize(("detail", "message"), [("boom\nmore", "boom"), ("", "syntax error")])
def test_unmarked_yaml_errors_become_syntax_errors(
    monkeypatch: pytest.MonkeyPatch, detail: str, message: str
) -> None:
    class Broken:
        def __init__(self, text: str) -> None:
            pass

        def get_event(self) -> None:
            raise source.yaml.YAMLError(detail)

    monkeypatch.setattr(source, "_Parser", Broken)
    err = _err("a: 1")
    assert err.code == "policy.yaml.syntax"
    assert err.message == f"invalid YAML: {message}"


def test_pure_python_parser_gives_the_same_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "a: [1, {b: no}]\nc: 'x'\n"
    expected = _yaml(text)
    monkeypatch.setattr(source, "_Parser", None)
    assert _yaml(text) == expected
    assert _err("a: &x 1").code == "policy.yaml.alias"


def test_empty_document_is_null_at_line_one() -> None:
    node = read_yaml(b"", "j.yaml")
    assert node.value is None
    assert (node.location.line, node.location.col) == (1, 1)


# -- scalars ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("no", "no"),
        ("on", "on"),
        ("yes", "yes"),
        ("off", "off"),
        ("y", "y"),
        ("~", None),
        ("null", None),
        ("Null", None),
        ("NULL", None),
        ("true", True),
        ("True", True),
        ("FALSE", False),
        ("0", 0),
        ("-17", -17),
        ("+3", 3),
        ("1_000", 1000),
        ("0x1F", 31),
        ("0o17", 15),
        ("1.5", 1.5),
        ("-2.5e3", -2500.0),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("1.", 1.0),
        (".inf", math.inf),
        ("+.inf", math.inf),
        ("-.Inf", -math.inf),
        (".INF", math.inf),
        ("0o19", "0o19"),
        ("0xZZ", "0xZZ"),
        ("1.2.3", "1.2.3"),
        ("10m", "10m"),
        ("2024-01-01", "2024-01-01"),
        ("'1'", "1"),
        ('"true"', "true"),
        ("'null'", "null"),
        ("|\n  text", "text"),
        ("''", ""),
    ],
)
def test_yaml_12_core_scalars(text: str, value: object) -> None:
    got = _yaml(f"v: {text}")
    assert isinstance(got, dict)
    assert got["v"] == value
    assert type(got["v"]) is type(value)


def test_empty_value_is_null_and_nan_is_a_float() -> None:
    got = _yaml("a:\nb: .nan\nc: .NaN")
    assert isinstance(got, dict)
    assert got["a"] is None
    assert math.isnan(got["b"]) and math.isnan(got["c"])


def test_decimal_with_leading_zero_is_an_integer() -> None:
    # YAML 1.2 core schema: int is [-+]?[0-9]+, so `012` is the integer 12, not a float.
    got = _yaml("v: 012")
    assert got == {"v": 12}
    assert type(got["v"]) is int  # type: ignore[index]


# -- locations ----------------------------------------------------------------------------------


def test_every_value_knows_its_location_and_path() -> None:
    node = read_yaml(b"journey: shop\ncheckpoints:\n  login:\n    - allow: {}\n", "shop.yaml")
    checkpoints = node.value["checkpoints"]
    step = checkpoints.value["login"].value[0]
    allow = step.value["allow"]
    assert (node.value["journey"].location.line, node.value["journey"].location.col) == (1, 10)
    assert node.value["journey"].location.path == "$.journey"
    assert (step.location.line, step.location.col, step.location.path) == (
        4,
        7,
        "$.checkpoints.login[0]",
    )
    assert allow.location.path == "$.checkpoints.login[0].allow"
    assert (allow.location.line, allow.location.col) == (4, 14)
    assert str(allow.location) == "shop.yaml:4:14"


def test_plain_strips_locations_in_order() -> None:
    node = read_yaml(b"b: [1, {c: 2}]\na: x\n", "j.yaml")
    value = plain(node)
    assert value == {"b": [1, {"c": 2}], "a": "x"}
    assert list(value) == ["b", "a"]


# -- JSON ---------------------------------------------------------------------------------------


def test_json_reads_plain_values() -> None:
    assert read_json(b'{"a": [1, 2.5, "x]", {"b": null}], "c": true}', "d.json") == {
        "a": [1, 2.5, "x]", {"b": None}],
        "c": True,
    }


def test_json_duplicate_key_is_refused() -> None:
    with pytest.raises(PolicyError) as info:
        read_json(b'{"a": 1, "b": {"c": 1, "c": 2}}', "d.json")
    assert info.value.code == "policy.yaml.duplicate_key"
    assert "`c`" in info.value.message
    assert info.value.location.file == "d.json"


def test_json_depth_limit() -> None:
    ok = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert read_json(ok, "d.json") is not None
    with pytest.raises(PolicyError) as info:
        read_json(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "d.json")
    assert info.value.code == "policy.yaml.too_deep"


def test_json_brackets_inside_strings_do_not_count() -> None:
    text = '{"a": "' + "[" * (MAX_DEPTH + 5) + '\\"{{"}'
    assert read_json(text.encode(), "d.json") == {"a": "[" * (MAX_DEPTH + 5) + '"{{'}


def test_json_syntax_error_has_line_and_column() -> None:
    with pytest.raises(PolicyError) as info:
        read_json(b'{\n  "a": 1,\n  oops\n}', "d.json")
    err = info.value
    assert err.code == "policy.yaml.syntax"
    assert (err.location.file, err.location.line, err.location.col) == ("d.json", 3, 3)
    assert err.message.startswith("invalid JSON: ")
    assert "oops" not in err.message


def test_alias_in_key_position_reports_the_mapping_path() -> None:
    err = _err("x: {*a : 1}")
    assert err.code == "policy.yaml.alias"
    assert err.location.path == "$.x"


def test_tagged_collection_key_reports_the_mapping_path() -> None:
    err = _err("x:\n  ? !!python/tuple [a]\n  : b")
    assert err.code == "policy.yaml.tag"
    assert (err.location.line, err.location.path) == (2, "$.x")


def test_events_the_reader_does_not_know_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    events = [source.yaml.StreamStartEvent(), source.yaml.Event(), source.yaml.StreamEndEvent()]

    class Fake:
        def __init__(self, text: str) -> None:
            pass

        def get_event(self) -> object:
            return events.pop(0)

    monkeypatch.setattr(source, "_Parser", Fake)
    assert read_yaml(b"", "j.yaml").value is None


def test_errors_that_are_not_yaml_errors_propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def __init__(self, text: str) -> None:
            pass

        def get_event(self) -> None:
            raise RuntimeError("not a YAML problem")

    monkeypatch.setattr(source, "_Parser", Broken)
    with pytest.raises(RuntimeError, match="not a YAML problem"):
        source.read_yaml(b"a: 1", "j.yaml")


def test_yaml_errors_from_a_reloaded_yaml_module_are_still_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # libyaml keeps the classes it saw at import; a re-imported `yaml` has other objects.
    Stale = type("MarkedYAMLError", (type("YAMLError", (Exception,), {}),), {})

    class Broken:
        def __init__(self, text: str) -> None:
            pass

        def get_event(self) -> None:
            error = Stale()
            error.problem = "found junk"  # type: ignore[attr-defined]
            raise error

    monkeypatch.setattr(source, "_Parser", Broken)
    err = _err("a: 1")
    assert err.code == "policy.yaml.syntax"
    assert err.message == "invalid YAML: found junk"
