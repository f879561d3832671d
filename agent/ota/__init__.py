"""OTA model delivery on the device: verified manifests, a pure planner, an executor, model runtimes, a node router.

Layers (imports only go down)::

    service      the loop: heartbeat hooks -> verify -> observe -> plan -> execute, status for heartbeats
    executor     applies steps (download, verify, start candidate, health check, switch, stop, cleanup)
    observe      reads the world: models on disk, downloads in flight, instances, routes, free space
    plan         PURE: (desired, observed, records, context) -> steps; no I/O
    states, observed, records, steps   plain data
"""
