"""Tiny ONNX models made in code, for the benchmark, the tests and demos (needs the ``onnx`` package)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def write_dense_onnx(path: Path, features: int = 4, outputs: int = 3, seed: int = 0, scale: float = 1.0) -> Path:
    """``output = relu(input @ W + b) * scale`` with input ``[-1, features]`` FP32, saved to ``path``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((features, outputs)).astype(np.float32)
    bias = rng.standard_normal(outputs).astype(np.float32)
    graph = helper.make_graph(
        nodes=[helper.make_node("MatMul", ["input", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["z"]),
               helper.make_node("Relu", ["z"], ["r"]), helper.make_node("Mul", ["r", "scale"], ["output"])],
        name="dense",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", features])],
        outputs=[helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", outputs])],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b"),
                     numpy_helper.from_array(np.array(scale, dtype=np.float32), "scale")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="jetfleet")
    model.ir_version = 8  # readable by older ONNX Runtime builds (JetPack wheels) too
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def dense_reference(features: int, outputs: int, seed: int, scale: float,
                    x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """What :func:`write_dense_onnx`'s model computes, in numpy."""
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((features, outputs)).astype(np.float32)
    bias = rng.standard_normal(outputs).astype(np.float32)
    result: np.ndarray[Any, Any] = np.maximum(x @ weights + bias, 0) * np.float32(scale)
    return result
