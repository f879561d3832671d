"""Headless jobs on the device: scheduled and on-demand runs of a model over a folder of inputs.

Pure parts: :mod:`.schedule` (when is a job due) and :mod:`.plan` (desired jobs + observed state -> what to
start now), :mod:`.inputs` (files -> tensors) and :mod:`.sketches` (tensors -> KLL sketches). The executor
(:mod:`.runner`) runs one job over its new files; :mod:`.outbox` is the durable SQLite outbox and
:mod:`.upload` ships it. :mod:`.service` ties them to the verified manifest (docs/jobs-and-drift.md).
"""
