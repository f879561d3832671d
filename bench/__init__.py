"""Measuring and demonstrating: benchmarks, load generators, echo nodes, test models, the demo."""
