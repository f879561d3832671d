"""The control plane ("ML platform backend"): device registry, heartbeats, model registry, OTA, fleet status."""
