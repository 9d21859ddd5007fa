"""The console (`/console`): server-rendered pages over the same services as the admin API,
served by `juncture serve` itself. docs/console.md says what each page does and how it is
secured (security.py)."""

from __future__ import annotations

from starlette.routing import Mount, Route

from juncture.api.console import identities, overview, pages, rehearsals, signals, versions
from juncture.api.console.render import page, static
from juncture.api.console.security import Logins
from juncture.api.console.versions import UPLOAD_LIMIT

__all__ = ["Logins", "mount"]


def mount() -> Mount:
    """The console's routes, under /console."""
    return Mount("/console", routes=[
        Route("/", page(pages.home), methods=["GET"]),
        Route("/login", pages.login_form, methods=["GET"]),
        Route("/login", pages.log_in, methods=["POST"]),
        Route("/logout", page(pages.log_out, action="console.logout"), methods=["POST"]),
        Route("/static/{name}", static, methods=["GET"]),
        Route("/sessions", page(pages.sessions), methods=["GET"]),
        Route("/sessions/{session_id}", page(pages.session_page), methods=["GET"]),
        Route("/sessions/{session_id}/revoke",
              page(pages.revoke_session, scope="manage_subjects", action="session.revoke"),
              methods=["POST"]),
        Route("/decisions", page(pages.decisions), methods=["GET"]),
        Route("/decisions/{decision_id}", page(pages.decision_page), methods=["GET"]),
        Route("/journeys", page(versions.journeys), methods=["GET"]),
        Route("/overview", page(overview.overview), methods=["GET"]),
        Route("/identities", page(identities.identities), methods=["GET"]),
        Route("/subjects/{subject_type}/{subject_id}/status",
              page(identities.set_status, scope="manage_subjects", action="subject.status"),
              methods=["POST"]),
        Route("/apps", page(identities.create_app, scope="manage_apps", action="app.create"),
              methods=["POST"]),
        Route("/apps/{app_id}/keys",
              page(identities.rotate_key, scope="manage_apps", action="app.rotate_key"),
              methods=["POST"]),
        Route("/signals", page(signals.signals), methods=["GET"]),
        Route("/transmitters/{name}/remove",
              page(signals.distrust, scope="manage_apps", action="transmitter.remove"),
              methods=["POST"]),
        Route("/versions", page(versions.versions), methods=["GET"]),
        Route("/versions/diff", page(versions.diff), methods=["GET"]),
        Route("/versions/publish", page(versions.publish_form, scope="publish"),
              methods=["GET"]),
        Route("/versions/publish",
              page(versions.publish, scope="publish", action="version.publish",
                   limit=UPLOAD_LIMIT), methods=["POST"]),
        Route("/versions/{version_id}", page(versions.version_files), methods=["GET"]),
        Route("/versions/{version_id}/activate",
              page(versions.activate, scope="publish", action="version.activate"),
              methods=["POST"]),
        Route("/versions/{version_id}/shadow",
              page(rehearsals.install_shadow, scope="publish", action="shadow.install"),
              methods=["POST"]),
        Route("/shadow/drop", page(rehearsals.drop_shadow, scope="publish", action="shadow.drop"),
              methods=["POST"]),
        Route("/shadow/promote",
              page(rehearsals.promote_shadow, scope="publish", action="shadow.promote"),
              methods=["POST"]),
        Route("/replays", page(rehearsals.start_replay, scope="publish", action="replay.start"),
              methods=["POST"]),
        Route("/replays/{replay_id}", page(rehearsals.replay_page), methods=["GET"]),
    ])  # fmt: skip
