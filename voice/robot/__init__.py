"""Robot drivers: ``none`` (dry run) and ``go2`` (Unitree SDK SportClient over CycloneDDS)."""
