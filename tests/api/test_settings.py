"""The server's settings: one struct, handed to workers as JSON and read back strictly."""

from __future__ import annotations

import msgspec
import pytest

from juncture.api.limits import Limits
from juncture.api.settings import ServerSettings, decode, encode
from juncture.service.observe import ObserveSettings


def test_the_settings_round_trip_through_their_json() -> None:
    settings = ServerSettings(
        db="/var/lib/j.db",
        retention_days=7,
        decision_log="durable",
        metrics_token="t0ken",
        observe=ObserveSettings(connection_ip=True),
        limits=Limits(hash_concurrency=3, hash_queue=0),
    ).with_key_files()
    assert decode(encode(settings)) == settings


def test_missing_key_files_sit_next_to_the_database() -> None:
    settings = decode('{"db": "/srv/j.db"}')
    assert settings.authn.key_file == "/srv/j.db.keys"
    assert settings.transmit.key_file == "/srv/j.db.ssf-key.json"
    assert decode(None).authn.key_file == "juncture.db.keys"


@pytest.mark.parametrize(
    "text",
    [
        '{"db": "j.db", "retention": 3}',  # an unknown field
        '{"limits": {"max_headers": 100, "max_body": 5}}',  # an unknown nested field
        '{"retention_days": "forever"}',  # a wrong type
        '{"limits": {"max_headers": 0}}',  # a limit below its floor
        "[]",
    ],
)
def test_settings_that_cannot_be_used_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid server settings"):
        decode(text)
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(text, type=ServerSettings)
