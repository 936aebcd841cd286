"""`python -m taskarith`: the same entry point as the `taskarith` command."""

from .cli import main

main()
