"""``python -m churnkit``: the command line."""

from churnkit.cli import main

main()
