"""Plug-ins: method kinds and enrichers that live outside Juncture, registered before use.

A plug-in is a Python module. Importing it registers what it declares, with the same calls
the built-ins use:

- a method kind: `juncture.methods.register_kind(MethodKind(...))` (name, default AAL, ``amr``
  values, the class that verifies, the record type, the enrol / start / confirm steps);
- an enricher: `juncture.signals.register_enricher(...)` (the facts it provides, added to the
  fact schema, and how it computes them from a request's observation).

Which modules: those named in ``JUNCTURE_PLUGINS`` (comma-separated module names, importable
from the server's ``sys.path``), and those of installed distributions' ``juncture.plugins``
entry points. `load_configured` imports them once per process: the CLI does when it starts
(so `juncture check` knows a plug-in's kinds and facts) and every server worker does when it
builds its runtime (`juncture.api.server.open_runtime`); workers inherit the variable from
`juncture serve`. Registration must happen before a journey that names a plug-in's kind or
fact is loaded, which is why it is done before the runtime is composed and never later.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points

#: The environment variable naming plug-in modules (comma-separated).
PLUGINS_ENV = "JUNCTURE_PLUGINS"
#: The entry point group installed distributions declare plug-in modules in.
ENTRY_POINT_GROUP = "juncture.plugins"

_loaded: set[str] = set()


def load(modules: Iterable[str]) -> list[str]:
    """Import each plug-in module (once); the names imported now. The built-in kinds and
    facts need no loading: the journey language knows them, and the server builds the
    built-in methods and enrichers itself.

    Raises:
        ImportError: a module that cannot be imported (the server refuses to start).
    """
    done = []
    for name in modules:
        name = name.strip()
        if name and name not in _loaded:
            importlib.import_module(name)
            _loaded.add(name)
            done.append(name)
    return done


def configured(environ: Mapping[str, str] | None = None) -> list[str]:
    """The plug-in modules configured: ``JUNCTURE_PLUGINS``, then entry points."""
    env = os.environ if environ is None else environ
    names = [n.strip() for n in env.get(PLUGINS_ENV, "").split(",") if n.strip()]
    names += [point.value for point in entry_points(group=ENTRY_POINT_GROUP)]
    return names


def load_configured() -> list[str]:
    """Load every configured plug-in (see the module's docstring)."""
    return load(configured())
