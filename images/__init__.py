"""Build helpers for the container images (``python -m images.build --help``)."""
