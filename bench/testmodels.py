"""Tiny ONNX models made in code, for the benchmark, the tests and demos (needs the ``onnx`` package)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def write_dense_onnx(path: Path, features: int = 4, outputs: int = 3, seed: int = 0, scale: float = 1.0,
                     slow_size: int = 0, fail_above: float | None = None) -> Path:
    """``output = relu(input @ W + b) * scale`` with input ``[-1, features]`` FP32, saved to ``path``.

    ``slow_size`` N > 0 gives the same answers, slowly: every request also multiplies two N x N matrices
    made from its input (so nothing can be precomputed) and adds zero times their sum. A model version
    that passes its golden check but is slow in the field. ``fail_above`` T fails every request whose
    smallest input value is above T (a reshape to an impossible shape): with T = 0.5 the golden input
    (-1..1) and the warm-up (zeros) pass, and a field of all-ones inputs gets only errors.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((features, outputs)).astype(np.float32)
    bias = rng.standard_normal(outputs).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["input", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["z"]),
             helper.make_node("Relu", ["z"], ["r"])]
    initializer = [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b"),
                   numpy_helper.from_array(np.array(scale, dtype=np.float32), "scale")]
    last = "r"
    if slow_size > 0:
        nodes += [*_slow_zero("input", "zero"), helper.make_node("Add", ["r", "zero"], ["slow_r"])]
        initializer += [numpy_helper.from_array(np.array([slow_size, slow_size], dtype=np.int64), "slow_shape"),
                        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "nought")]
        last = "slow_r"
    if fail_above is not None:
        nodes += _fail_above("input", last, "checked_r")
        initializer += [numpy_helper.from_array(np.array(fail_above, dtype=np.float32), "fail_above"),
                        numpy_helper.from_array(np.array([-1], dtype=np.int64), "any_rows"),
                        numpy_helper.from_array(np.array([outputs], dtype=np.int64), "columns")]
        last = "checked_r"
    nodes.append(helper.make_node("Mul", [last, "scale"], ["output"]))
    graph = helper.make_graph(
        nodes=nodes, name="dense",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", features])],
        outputs=[helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", outputs])],
        initializer=initializer,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="jetfleet")
    model.ir_version = 8  # readable by older ONNX Runtime builds (JetPack wheels) too
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _slow_zero(source: str, result: str) -> list[Any]:
    """Nodes computing ``0 * sum(A @ A)`` with ``A = sigmoid(sum(source))`` expanded to ``slow_shape``."""
    from onnx import helper

    return [helper.make_node("ReduceSum", [source], ["slow_sum"]),
            helper.make_node("Sigmoid", ["slow_sum"], ["slow_g"]),
            helper.make_node("Expand", ["slow_g", "slow_shape"], ["slow_a"]),
            helper.make_node("MatMul", ["slow_a", "slow_a"], ["slow_b"]),
            helper.make_node("ReduceSum", ["slow_b"], ["slow_total"]),
            helper.make_node("Mul", ["slow_total", "nought"], [result])]


def _fail_above(source: str, value: str, result: str) -> list[Any]:
    """``value`` reshaped to ``[-1, columns + (min(source) > fail_above)]``: impossible when the check is true."""
    from onnx import TensorProto, helper

    return [helper.make_node("ReduceMin", [source], ["fail_min"], keepdims=0),
            helper.make_node("Greater", ["fail_min", "fail_above"], ["fail_bad"]),
            helper.make_node("Cast", ["fail_bad"], ["fail_extra"], to=TensorProto.INT64),
            helper.make_node("Add", ["columns", "fail_extra"], ["fail_columns"]),
            helper.make_node("Concat", ["any_rows", "fail_columns"], ["fail_shape"], axis=0),
            helper.make_node("Reshape", [value, "fail_shape"], [result])]


def dense_reference(features: int, outputs: int, seed: int, scale: float,
                    x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """What :func:`write_dense_onnx`'s model computes, in numpy."""
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((features, outputs)).astype(np.float32)
    bias = rng.standard_normal(outputs).astype(np.float32)
    result: np.ndarray[Any, Any] = np.maximum(x @ weights + bias, 0) * np.float32(scale)
    return result
