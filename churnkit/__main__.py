"""``python -m churnkit``: the command line."""

from churnkit.cli.app import main

main()
