"""jetfleet: a containerized edge stack for NVIDIA Jetson fleets."""

__version__ = "0.1.0"
