"""TensorRT 10 (JetPack 6) through its Python API, with pycuda for device memory.

``.engine``/``.plan`` files are deserialized as they are (TensorRT itself refuses an engine from
another version or GPU). ``.onnx`` files are built into an engine on this device and cached by
:mod:`jetfleet.modelserver.engine_cache`; a cached engine that fails to deserialize is rebuilt once.
None of this runs on x86 CI (no TensorRT there); the decisions around it live in pure, tested
functions (:func:`profile_shapes`, ``engine_cache``, ``selection``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from jetfleet.modelfiles.dtypes import from_numpy
from jetfleet.modelfiles.errors import EngineBuildError, MissingFrameworkError
from jetfleet.modelfiles.tensors import ModelSignature, TensorSpec
from jetfleet.modelserver.engine_cache import EngineCache, EngineKey, Precision, load_engine
from jetfleet.modelserver.loaders.base import Arrays, LoadOptions

log = logging.getLogger(__name__)


class TensorRTModel:
    platform = "tensorrt_plan"

    def __init__(self, trt: Any, cuda: Any, engine_bytes: bytes) -> None:
        self._trt, self._cuda = trt, cuda
        engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(engine_bytes)
        if engine is None:
            raise EngineBuildError("TensorRT could not deserialize the engine (built by another TensorRT version "
                                   "or for another GPU?)")
        self._engine = engine
        self._context = engine.create_execution_context()
        self._stream = cuda.Stream()
        self.backend = f"tensorrt:{trt.__version__}"
        self.signature = _engine_signature(trt, engine)

    def infer(self, inputs: Arrays) -> dict[str, np.ndarray[Any, Any]]:
        cuda, context = self._cuda, self._context
        input_buffers = []  # device memory must stay alive until the execution is done
        for spec in self.signature.inputs:
            host = np.ascontiguousarray(inputs[spec.name])
            context.set_input_shape(spec.name, host.shape)
            device = cuda.mem_alloc(max(host.nbytes, 1))
            cuda.memcpy_htod(device, host)
            context.set_tensor_address(spec.name, int(device))
            input_buffers.append(device)
        outputs = []
        for spec in self.signature.outputs:
            dtype = self._trt.nptype(self._engine.get_tensor_dtype(spec.name))
            host = np.empty(tuple(context.get_tensor_shape(spec.name)), dtype=dtype)
            device = cuda.mem_alloc(max(host.nbytes, 1))
            context.set_tensor_address(spec.name, int(device))
            outputs.append((spec.name, host, device))
        if not context.execute_async_v3(stream_handle=self._stream.handle):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        self._stream.synchronize()
        for _, host, device in outputs:
            cuda.memcpy_dtoh(host, device)
        return {name: host for name, host, _ in outputs}


def load_tensorrt(artifact: Path, model_sha256: str, options: LoadOptions) -> TensorRTModel:
    """Deserialize an engine file, or build (or reuse a cached build of) an engine from ONNX."""
    trt, cuda = _import_tensorrt()
    cuda.init()
    device = cuda.Device(0)
    device.make_context()  # current on the model thread, which also runs every infer()
    if artifact.suffix.lower() in (".engine", ".plan"):
        return TensorRTModel(trt, cuda, artifact.read_bytes())
    key = EngineKey(model_sha256=model_sha256, tensorrt_version=trt.__version__,
                    compute_capability="{}.{}".format(*device.compute_capability()), precision=options.precision)
    cache = EngineCache(options.engine_cache_dir) if options.engine_cache_dir else None

    return load_engine(cache, key, build=lambda: build_engine(trt, artifact, options.precision, options.max_batch),
                       deserialize=lambda engine_bytes: TensorRTModel(trt, cuda, engine_bytes))


def build_engine(trt: Any, onnx_path: Path, precision: Precision, max_batch: int) -> bytes:
    log.info("building a TensorRT %s engine from %s (this takes a while)", precision, onnx_path.name)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(index)) for index in range(parser.num_errors))
        raise EngineBuildError(f"{onnx_path}: TensorRT cannot parse the ONNX model: {errors}")
    config = builder.create_builder_config()
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        spec = TensorSpec(name=tensor.name, datatype=from_numpy(trt.nptype(tensor.dtype)), shape=tuple(tensor.shape))  # type: ignore[arg-type]
        profile.set_shape(tensor.name, *profile_shapes(spec, max_batch))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"{onnx_path}: TensorRT failed to build an engine (see the TensorRT log above)")
    return bytes(serialized)


def profile_shapes(spec: TensorSpec, max_batch: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) shapes of an optimization profile: only the leading (batch) dim may be dynamic."""
    if any(dim == -1 for dim in spec.shape[1:]):
        raise EngineBuildError(f"input {spec.describe()}: only the first (batch) dimension may be dynamic for a "
                               "TensorRT engine; export the ONNX model with fixed sizes for the others")
    if not spec.shape or spec.shape[0] != -1:
        return spec.shape, spec.shape, spec.shape
    rest = spec.shape[1:]
    return (1, *rest), (1, *rest), (max_batch, *rest)


def _engine_signature(trt: Any, engine: Any) -> ModelSignature:
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        spec = TensorSpec(name=name, datatype=from_numpy(trt.nptype(engine.get_tensor_dtype(name))),  # type: ignore[arg-type]
                          shape=tuple(engine.get_tensor_shape(name)))
        (inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs).append(spec)
    return ModelSignature(inputs=tuple(inputs), outputs=tuple(outputs))


def _import_tensorrt() -> tuple[Any, Any]:
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise MissingFrameworkError("TensorRT", "tensorrt", "jetson") from exc
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise MissingFrameworkError("TensorRT", "pycuda", "jetson") from exc
    return trt, cuda
