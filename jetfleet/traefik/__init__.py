"""Traefik, used by the gateway and by each node's model router: typed dynamic config, the binary."""
