"""The command-line client: a plain HTTP client of the service's API (``python -m client``)."""
