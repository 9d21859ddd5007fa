"""``python -m juncture.cli``: the command line."""

from juncture.cli.app import main

main()
