"""Every test runs with the built-in method kinds registered, as the CLI and the server do:
the journey language (`juncture.policy.kinds`) learns them from `juncture.methods`."""

import juncture.methods  # noqa: F401  (registers the built-in method kinds)
