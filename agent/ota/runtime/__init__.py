"""Model runtimes: where a model server instance runs (a Docker container, or a local process)."""
