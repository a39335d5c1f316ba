"""``python -m shrek``: the command line."""

from shrek.cli import main

main()
