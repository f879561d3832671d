"""The host agent: registration, heartbeat, metrics and exporter, OTA models and per-model containers."""
