"""The `juncture` command line: policy as code (check, test, explain), the decision service
(serve, admin-key) and the commands that talk to a running server (publish, versions,
rollback, sweep, wait, identities). The app and its entry point are in `app.py`; each
command (or family of commands) in its own module."""

from __future__ import annotations

from juncture.cli.app import app, main

__all__ = ["app", "main"]
