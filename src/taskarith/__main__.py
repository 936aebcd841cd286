"""`python -m taskarith`: the same entry point as the `taskarith` command."""

from .cli.app import main

main()
