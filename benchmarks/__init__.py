"""Scripts that measure netadapt's claims (``benchmarks/README.md``); ``benchmarks.common`` holds what they share."""
