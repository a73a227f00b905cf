"""`python -m lavin_cli` is the `lavin` command."""

from lavin_cli.cli.app import main

main()
