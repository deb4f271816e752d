"""``python -m triallens``: the same as the ``triallens`` command."""

from triallens.cli import main

main()
