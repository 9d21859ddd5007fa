"""``python -m juncture.cli``: the command line."""

from juncture.cli.app import main

if __name__ == "__main__":  # pragma: no cover
    main()
