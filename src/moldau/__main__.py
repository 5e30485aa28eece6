"""``python -m moldau``: the same as the ``moldau`` command."""

from moldau.cli.main import main

main()
