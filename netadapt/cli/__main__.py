"""``python -m netadapt.cli``: the same as the ``netadapt`` script."""

from netadapt.cli.main import main

main()
