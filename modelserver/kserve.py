"""KServe v2 (Open Inference Protocol) inference bodies: JSON tensors and the binary tensor extension.

With the binary extension (what ``tritonclient.http`` sends by default) a body is a JSON header
followed by raw tensor bytes; the ``Inference-Header-Content-Length`` HTTP header gives the JSON
length, and each binary tensor says its size in ``parameters.binary_data_size``. Numeric tensors
are little-endian, row-major; BYTES elements are a 4-byte little-endian length then the bytes.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jetfleet.modelfiles.dtypes import DATATYPES, from_numpy, to_numpy
from jetfleet.modelfiles.errors import InferenceRequestError
from jetfleet.modelfiles.tensors import ModelSignature, describe_all

HEADER_LENGTH = "Inference-Header-Content-Length"
NDArray = np.ndarray[Any, Any]


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")  # fields of protocol extensions we do not use


class RequestInput(_Loose):
    name: Annotated[str, Field(min_length=1)]
    shape: list[Annotated[int, Field(ge=0)]]
    datatype: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    data: list[Any] | None = None


class RequestOutput(_Loose):
    name: Annotated[str, Field(min_length=1)]
    parameters: dict[str, Any] = Field(default_factory=dict)


class InferRequestHeader(_Loose):
    id: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: Annotated[list[RequestInput], Field(min_length=1)]
    outputs: list[RequestOutput] | None = None


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: dict[str, tuple[str, NDArray]]  # name -> (KServe datatype, array)
    outputs: list[RequestOutput] | None
    binary_output: bool  # the request-level default for outputs


def decode_request(body: bytes, header_length: int | None) -> InferRequest:
    """Parse a body (JSON, or JSON + binary tensors when ``header_length`` is given)."""
    json_part, binary = _split(body, header_length)
    try:
        header = InferRequestHeader.model_validate_json(json_part)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        raise InferenceRequestError(f"invalid inference request: {where}: {error['msg']}") from exc
    inputs: dict[str, tuple[str, NDArray]] = {}
    offset = 0
    for tensor in header.inputs:
        if tensor.name in inputs:
            raise InferenceRequestError(f"input '{tensor.name}' appears more than once")
        array, offset = _decode_tensor(tensor, binary, offset)
        inputs[tensor.name] = (tensor.datatype, array)
    if offset != len(binary):
        raise InferenceRequestError(f"{len(binary) - offset} bytes of binary data are not claimed by any input's "
                                    "binary_data_size")
    return InferRequest(id=header.id, inputs=inputs, outputs=header.outputs,
                        binary_output=bool(header.parameters.get("binary_data_output", False)))


def _split(body: bytes, header_length: int | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not 0 < header_length <= len(body):
        raise InferenceRequestError(f"{HEADER_LENGTH} is {header_length} but the body has {len(body)} bytes")
    return body[:header_length], body[header_length:]


def _decode_tensor(tensor: RequestInput, binary: bytes, offset: int) -> tuple[NDArray, int]:
    if tensor.datatype not in DATATYPES:
        raise InferenceRequestError(f"input '{tensor.name}': unsupported datatype '{tensor.datatype}'; "
                                    f"supported: {', '.join(DATATYPES)}")
    count = math.prod(tensor.shape)
    size = tensor.parameters.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise InferenceRequestError(f"input '{tensor.name}': binary_data_size {size!r} does not fit the "
                                        f"{len(binary) - offset} binary bytes left")
        chunk = binary[offset:offset + size]
        return _from_binary(tensor, chunk, count).reshape(tensor.shape), offset + size
    if tensor.data is None:
        raise InferenceRequestError(f"input '{tensor.name}' has neither 'data' nor parameters.binary_data_size")
    return _from_json(tensor, count).reshape(tensor.shape), offset


def _from_binary(tensor: RequestInput, chunk: bytes, count: int) -> NDArray:
    if tensor.datatype == "BYTES":
        return _unpack_bytes(tensor.name, chunk, count)
    dtype = to_numpy(tensor.datatype)
    if len(chunk) != count * dtype.itemsize:
        raise InferenceRequestError(f"input '{tensor.name}': {len(chunk)} bytes of binary data, expected "
                                    f"{count * dtype.itemsize} for shape {tensor.shape} {tensor.datatype}")
    return np.frombuffer(chunk, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False)


def _unpack_bytes(name: str, chunk: bytes, count: int) -> NDArray:
    items: list[bytes] = []
    offset = 0
    while offset < len(chunk):
        if offset + 4 > len(chunk):
            raise InferenceRequestError(f"input '{name}': truncated BYTES element length")
        (length,) = struct.unpack_from("<I", chunk, offset)
        items.append(chunk[offset + 4:offset + 4 + length])
        offset += 4 + length
    if offset != len(chunk) or len(items) != count:
        raise InferenceRequestError(f"input '{name}': binary BYTES data holds {len(items)} elements, "
                                    f"the shape needs {count}")
    return _object_array(items)


def _object_array(items: list[bytes]) -> NDArray:
    array = np.empty(len(items), dtype=np.object_)
    array[:] = items
    return array


def _from_json(tensor: RequestInput, count: int) -> NDArray:
    try:
        if tensor.datatype == "BYTES":
            flat = np.array(tensor.data, dtype=np.object_).ravel()
            if not all(isinstance(item, str) for item in flat):
                raise TypeError("BYTES data must be strings")
            array = _object_array([item.encode() for item in flat])
        else:
            array = np.array(tensor.data, dtype=to_numpy(tensor.datatype)).ravel()
    except (ValueError, TypeError, OverflowError) as exc:
        raise InferenceRequestError(f"input '{tensor.name}': data does not fit datatype {tensor.datatype}: "
                                    f"{exc}") from exc
    if array.size != count:
        raise InferenceRequestError(f"input '{tensor.name}': {array.size} data elements, shape {tensor.shape} "
                                    f"needs {count}")
    return array


def check_inputs(request: InferRequest, signature: ModelSignature, model: str) -> None:
    """Refuse unknown, missing, mistyped and misshapen inputs, naming the tensor and what is expected."""
    for name, (datatype, array) in request.inputs.items():
        spec = signature.input(name)
        if spec is None:
            raise InferenceRequestError(f"unknown input '{name}' for model '{model}'; expected inputs: "
                                        f"{describe_all(signature.inputs)}")
        if datatype != spec.datatype:
            raise InferenceRequestError(f"input '{name}': datatype {datatype} does not match the expected "
                                        f"{spec.datatype} (shape {list(spec.shape)})")
        if not spec.accepts_shape(array.shape):
            raise InferenceRequestError(f"input '{name}': shape {list(array.shape)} does not match the expected "
                                        f"{list(spec.shape)} ({spec.datatype}; -1 means any size)")
    for spec in signature.inputs:
        if spec.name not in request.inputs:
            raise InferenceRequestError(f"missing input {spec.describe()} for model '{model}'")


def select_outputs(request: InferRequest, signature: ModelSignature, model: str) -> list[tuple[str, bool]]:
    """(output name, send as binary) in response order: the requested outputs, else all of them."""
    if request.outputs is None:
        return [(spec.name, request.binary_output) for spec in signature.outputs]
    selected = []
    for output in request.outputs:
        if signature.output(output.name) is None:
            raise InferenceRequestError(f"unknown output '{output.name}' for model '{model}'; outputs are: "
                                        f"{describe_all(signature.outputs)}")
        if output.parameters.get("classification"):
            raise InferenceRequestError(f"output '{output.name}': the classification extension is not supported")
        selected.append((output.name, bool(output.parameters.get("binary_data", request.binary_output))))
    return selected


def encode_response(model: str, version: str, request_id: str | None, outputs: dict[str, NDArray],
                    selected: list[tuple[str, bool]]) -> tuple[bytes, int | None]:
    """The response body, and the JSON header length when any output is binary (else None)."""
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, binary in selected:
        array = np.asarray(outputs[name])
        datatype = from_numpy(array.dtype)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            raw = _to_binary(array, datatype)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = _to_json(array, datatype)
        entries.append(entry)
    response: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": entries}
    if request_id is not None:
        response["id"] = request_id
    header = json.dumps(response, separators=(",", ":")).encode()
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)


def _as_bytes(item: Any) -> bytes:
    return item if isinstance(item, bytes) else str(item).encode()


def _to_binary(array: NDArray, datatype: str) -> bytes:
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(raw)) + raw for raw in map(_as_bytes, array.ravel()))
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def _to_json(array: NDArray, datatype: str) -> list[Any]:
    if datatype == "BYTES":
        return [_as_bytes(item).decode(errors="replace") for item in array.ravel()]
    return list(array.ravel().tolist())
