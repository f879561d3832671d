"""The gateway: Traefik load balancing across Jetsons, fed from a fleet file or the live registry."""
