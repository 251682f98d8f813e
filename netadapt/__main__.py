"""``python -m netadapt``: the command line."""

from netadapt.cli.main import main

main()
