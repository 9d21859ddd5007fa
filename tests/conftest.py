"""Fixtures every test folder may use: a real PostgreSQL server for the session
(tests/postgres.py), and a fresh database of it per test."""

from __future__ import annotations

from postgres import postgres_server as postgres_server
from postgres import postgres_url as postgres_url
