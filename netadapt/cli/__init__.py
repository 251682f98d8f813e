"""The ``netadapt`` command line (Typer): one module per command or command group."""
