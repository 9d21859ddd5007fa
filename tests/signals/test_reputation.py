"""Reputation lists from real YAML and JSON files: labels, errors, reload on change."""

from __future__ import annotations

import json
import logging
import textwrap

import pytest

from juncture.policy.source import MAX_FILE_BYTES
from juncture.signals.reputation import Reputation, ReputationError, ReputationFile

T0 = 1_800_000_000.0

LISTS = """\
labels:
  known_bad:
    description: addresses seen in attacks on us
    cidrs: [203.0.113.0/24, "2001:db8:bad::/48"]
    asns: [64496]
  anonymizing_proxy:
    cidrs: [198.51.100.0/24, 203.0.113.128/25]
    asns: [64500, AS64501]
  cloud_hosting:
    asns: [64510, 64496]
"""


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def lists(tmp_path):
    return write(tmp_path / "reputation.yaml", LISTS)


@pytest.mark.parametrize(
    ("ip", "asn", "labels"),
    [
        ("203.0.113.7", None, ["known_bad"]),
        ("203.0.113.200", None, ["anonymizing_proxy", "known_bad"]),
        ("2001:db8:bad::1", None, ["known_bad"]),
        ("::ffff:203.0.113.7", None, ["known_bad"]),
        ("198.51.100.1", 64501, ["anonymizing_proxy"]),
        ("192.0.2.1", 64496, ["cloud_hosting", "known_bad"]),
        ("192.0.2.1", 64510, ["cloud_hosting"]),
        ("192.0.2.1", 1, []),
        ("192.0.2.1", None, []),
        (None, 64500, ["anonymizing_proxy"]),
        (None, None, []),
        ("not an ip", None, []),
    ],
)
def test_labels(lists, ip, asn, labels):
    assert ReputationFile(lists).labels(ip, asn) == labels


def test_the_same_lists_in_json(tmp_path):
    document = {
        "labels": {
            "known_bad": {"cidrs": ["203.0.113.0/24"], "asns": [64496]},
            "cloud_hosting": {"asns": ["AS64510"]},
        }
    }
    path = tmp_path / "reputation.json"
    path.write_text(json.dumps(document, indent=2))
    rep = ReputationFile(path)
    assert rep.labels("203.0.113.9", 64510) == ["cloud_hosting", "known_bad"]
    assert rep.status().detail == {"ranges": "1", "asns": "2", "labels": "cloud_hosting,known_bad"}


def test_an_empty_list_of_labels_is_valid(tmp_path):
    rep = ReputationFile(write(tmp_path / "r.yaml", "labels: {}\n"))
    assert rep.labels("203.0.113.7", 64496) == []


def test_thousands_of_ranges(tmp_path):
    lines = ["labels:", "  cloud_hosting:", "    cidrs:"]
    lines += [f"      - 10.{i // 256}.{i % 256}.0/24" for i in range(5000)]
    lines += ["  known_bad:", "    cidrs: [10.7.7.7/32]"]
    rep = ReputationFile(write(tmp_path / "r.yaml", "\n".join(lines)))
    assert rep.labels("10.19.135.4") == ["cloud_hosting"]
    assert rep.labels("10.7.7.7") == ["cloud_hosting", "known_bad"]
    assert rep.labels("10.20.0.1") == []  # past the last range
    assert rep.status().detail["ranges"] == "5001"


def problems(path):
    with pytest.raises(ReputationError) as info:
        ReputationFile(path)
    return info.value


def test_every_problem_of_a_bad_file_is_reported_with_its_place(tmp_path):
    path = write(
        tmp_path / "r.yaml",
        """\
        labels:
          Known-Bad:
            cidrs: [203.0.113.0/24]
          proxy:
            cidrs: [203.0.113.0/33, 42]
            asns: [0, -5, "ASX", true, 4294967296]
            color: red
          cloud:
            cidrs: 10.0.0.0/8
            asns: {a: 1}
            description: [not, text]
          empty: []
        extra: 1
        """,
    )
    error = problems(path)
    found = [(e.code, e.location.line, e.message) for e in error.errors]
    assert found == [
        (
            "policy.schema.name",
            3,
            "label `Known-Bad` is not a valid name (lowercase letters, digits and `_`, "
            "starting with a letter)",
        ),
        ("policy.schema.cidr", 5, "`203.0.113.0/33` is not a valid IPv4 or IPv6 CIDR"),
        ("policy.schema.cidr", 5, "`42` is not a valid IPv4 or IPv6 CIDR"),
        (
            "policy.schema.value",
            6,
            "`0` is not an AS number (1 to 4294967295, optionally written `AS123`)",
        ),
        (
            "policy.schema.value",
            6,
            "`-5` is not an AS number (1 to 4294967295, optionally written `AS123`)",
        ),
        (
            "policy.schema.value",
            6,
            "`ASX` is not an AS number (1 to 4294967295, optionally written `AS123`)",
        ),
        (
            "policy.schema.value",
            6,
            "`True` is not an AS number (1 to 4294967295, optionally written `AS123`)",
        ),
        (
            "policy.schema.value",
            6,
            "`4294967296` is not an AS number (1 to 4294967295, optionally written `AS123`)",
        ),
        (
            "policy.schema.unknown_key",
            7,
            "unknown key `color` in label `proxy` (expected `description`, `cidrs`, `asns`)",
        ),
        ("policy.schema.type", 9, "`cidrs` must be a list"),
        ("policy.schema.type", 10, "`asns` must be a list"),
        ("policy.schema.type", 11, "`description` must be a string"),
        ("policy.schema.type", 12, "label `empty` must be a mapping"),
        (
            "policy.schema.unknown_key",
            13,
            "unknown key `extra` in the reputation file (expected `labels`)",
        ),
    ]
    assert error.code == "policy.schema.name"  # the first problem's
    assert error.message.startswith(
        f"14 problem(s) in the reputation file `{path}`, first: {path}:3:"
    )


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("", "policy.schema.type", "the reputation file must be a mapping"),
        ("- a\n", "policy.schema.type", "the reputation file must be a mapping"),
        ("{}\n", "policy.schema.missing_key", "the reputation file needs `labels`"),
        ("labels: [a]\n", "policy.schema.type", "`labels` must be a mapping"),
        ("labels: {a: 1\n", "policy.yaml.syntax", None),
        ("labels: &x {}\nmore: *x\n", "policy.yaml.alias", None),
        ("labels: {}\nlabels: {}\n", "policy.yaml.duplicate_key", None),
    ],
)
def test_a_bad_file_is_refused_at_load(tmp_path, text, code, message):
    error = problems(write(tmp_path / "r.yaml", text))
    assert error.code == code
    if message is not None:
        assert error.errors[0].message == message


def test_bad_json(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"labels": {"a": {"cidrs": ["nope"]}}}')
    error = problems(path)
    assert (error.code, error.errors[0].location.path) == (
        "policy.schema.cidr",
        "$.labels.a.cidrs[0]",
    )
    path.write_text('{"labels": ')
    assert problems(path).code == "policy.yaml.syntax"


def test_a_missing_file_is_refused_at_load(tmp_path):
    error = problems(tmp_path / "absent.yaml")
    assert error.code == "policy.file.unreadable"
    assert "no such file or directory" in error.message


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    assert problems(path).code == "policy.file.too_large"


def test_a_changed_file_is_reloaded(lists):
    rep = ReputationFile(lists, check_interval=0, now=T0)
    assert rep.labels("192.0.2.1", now=T0) == []
    write(lists, "labels:\n  known_bad:\n    cidrs: [192.0.2.0/24]\n")
    assert rep.labels("192.0.2.1", now=T0 + 1) == ["known_bad"]
    assert rep.labels("203.0.113.7") == []
    status = rep.status()
    assert (status.state, status.loaded_at, status.error) == ("ok", T0 + 1, None)


def test_the_file_is_looked_at_once_per_check_interval(lists):
    rep = ReputationFile(lists, check_interval=60)
    assert rep.refresh(T0) is False
    write(lists, "labels:\n  known_bad:\n    cidrs: [192.0.2.0/24]\n")
    assert rep.labels("192.0.2.1", now=T0 + 59) == []
    assert rep.labels("192.0.2.1", now=T0 + 60) == ["known_bad"]


def test_a_bad_new_version_keeps_the_last_good_lists(lists, caplog):
    rep = ReputationFile(lists, check_interval=0, now=T0)
    write(lists, "labels:\n  known_bad:\n    cidrs: [not a cidr]\n")
    with caplog.at_level(logging.WARNING, logger="juncture.signals.reputation"):
        assert rep.labels("203.0.113.7", now=T0 + 1) == ["known_bad"]
    status = rep.status()
    assert status.state == "error"
    assert "`not a cidr` is not a valid IPv4 or IPv6 CIDR" in (status.error or "")
    assert (status.error or "").endswith("the lists loaded before are still in use")
    assert status.loaded_at == T0
    assert "still in use" in caplog.text
    # not reported again and again: only a new version is looked at
    assert rep.refresh(T0 + 2) is False
    write(lists, LISTS)
    assert rep.refresh(T0 + 3) is True
    assert rep.status().state == "ok"


def test_a_vanished_file_keeps_the_last_good_lists(lists):
    rep = ReputationFile(lists, check_interval=0)
    lists.unlink()
    assert rep.labels("203.0.113.7", now=T0) == ["known_bad"]
    assert rep.status().state == "missing"
    lists.mkdir()  # back, but not readable as a file
    assert rep.labels("203.0.113.7", now=T0 + 1) == ["known_bad"]
    assert rep.status().state == "missing"
    assert "cannot read the file" in (rep.status().error or "")


def test_lists_built_in_memory():
    rep = Reputation([("10.0.0.0/8", "corp_scanner")], [(64496, "known_bad"), (64496, "x")])
    assert rep.labels("10.1.1.1", 64496) == ["corp_scanner", "known_bad", "x"]
    assert rep.label_names == {"corp_scanner", "known_bad", "x"}
    assert Reputation().labels("10.1.1.1", 64496) == []


def test_a_negative_interval_is_refused(lists):
    with pytest.raises(ValueError, match="check interval"):
        ReputationFile(lists, check_interval=-1)
