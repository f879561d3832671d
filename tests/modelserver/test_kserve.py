"""KServe v2 bodies as tritonclient writes and reads them (its own encoder/decoder, no server)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton

from jetfleet.modelfiles.errors import InferenceRequestError
from jetfleet.modelfiles.tensors import ModelSignature, TensorSpec
from jetfleet.modelserver.kserve import check_inputs, decode_request, encode_response, select_outputs

SIGNATURE = ModelSignature(
    inputs=(TensorSpec(name="pixels", datatype="FP32", shape=(-1, 4)),
            TensorSpec(name="tags", datatype="BYTES", shape=(-1,))),
    outputs=(TensorSpec(name="scores", datatype="FP32", shape=(-1, 2)),
             TensorSpec(name="labels", datatype="BYTES", shape=(-1,))))
PIXELS = np.arange(8, dtype=np.float32).reshape(2, 4)
TAGS = np.array([b"cat", "h\u00e9".encode()], dtype=np.object_)


def _inputs(binary: bool) -> list[Any]:
    pixels = triton.InferInput("pixels", [2, 4], "FP32")
    pixels.set_data_from_numpy(PIXELS, binary_data=binary)
    tags = triton.InferInput("tags", [2], "BYTES")
    tags.set_data_from_numpy(TAGS, binary_data=binary)
    return [pixels, tags]


def _body(**kwargs: Any) -> tuple[bytes, int | None]:
    body, json_size = triton.InferenceServerClient.generate_request_body(**kwargs)
    return (body.encode() if isinstance(body, str) else body), json_size


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_requests_decode_to_the_same_arrays(binary: bool) -> None:
    request = decode_request(*_body(inputs=_inputs(binary), request_id="r-7"))
    check_inputs(request, SIGNATURE, "m")
    datatype, pixels = request.inputs["pixels"]
    assert datatype == "FP32" and pixels.dtype == np.float32
    np.testing.assert_array_equal(pixels, PIXELS)
    assert list(request.inputs["tags"][1]) == list(TAGS)
    assert request.id == "r-7"
    assert request.binary_output is True  # tritonclient asks for binary outputs when none are named


@pytest.mark.parametrize("binary_outputs", [True, False])
def test_responses_decode_in_tritonclient(binary_outputs: bool) -> None:
    outputs = {"scores": np.array([[0.25, 0.75], [1.0, 0.0]], dtype=np.float32),
               "labels": np.array(["dog", "cat"])}
    selected = [("scores", binary_outputs), ("labels", binary_outputs)]
    body, header_length = encode_response("m", "3", "r-1", outputs, selected)
    assert (header_length is not None) == binary_outputs
    result = triton.InferResult.from_response_body(body, header_length=header_length)
    np.testing.assert_array_equal(result.as_numpy("scores"), outputs["scores"])
    labels = [item if isinstance(item, bytes) else item.encode() for item in result.as_numpy("labels")]
    assert labels == [b"dog", b"cat"]  # tritonclient gives bytes from binary data, str from JSON
    assert result.get_response()["model_version"] == "3" and result.get_response()["id"] == "r-1"


def test_requested_outputs_choose_order_and_encoding() -> None:
    outputs = [triton.InferRequestedOutput("labels", binary_data=False), triton.InferRequestedOutput("scores")]
    request = decode_request(*_body(inputs=_inputs(True), outputs=outputs))
    assert select_outputs(request, SIGNATURE, "m") == [("labels", False), ("scores", True)]


def _json_request(**tensor: Any) -> bytes:
    base: dict[str, Any] = {"name": "pixels", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    tags: dict[str, Any] = {"name": "tags", "shape": [1], "datatype": "BYTES", "data": ["x"]}
    return json.dumps({"inputs": [{**base, **tensor}, tags]}).encode()


@pytest.mark.parametrize(("tensor", "message"), [
    ({"shape": [1, 3], "data": [1, 2, 3]},
     r"input 'pixels': shape \[1, 3\] does not match the expected \[-1, 4\] \(FP32"),
    ({"shape": [4]}, r"input 'pixels': shape \[4\] does not match the expected \[-1, 4\]"),
    ({"datatype": "FP64"}, r"input 'pixels': datatype FP64 does not match the expected FP32 \(shape \[-1, 4\]\)"),
    ({"name": "image"}, r"unknown input 'image' for model 'm'; expected inputs: 'pixels' \(FP32 \[-1, 4\]\)"),
    ({"data": [1, 2, 3]}, r"input 'pixels': 3 data elements, shape \[1, 4\] needs 4"),
    ({"data": ["a", "b", "c", "d"]}, r"input 'pixels': data does not fit datatype FP32"),
    ({"datatype": "BF16"}, r"input 'pixels': unsupported datatype 'BF16'"),
    ({"data": None}, r"input 'pixels' has neither 'data' nor parameters.binary_data_size"),
    ({"shape": [1, -4]}, r"invalid inference request: inputs.0.shape.1"),
])
def test_bad_inputs_name_the_tensor_and_what_was_expected(tensor: dict[str, Any], message: str) -> None:
    with pytest.raises(InferenceRequestError, match=message) as caught:
        check_inputs(decode_request(_json_request(**tensor), None), SIGNATURE, "m")
    assert caught.value.status == 400


def test_a_missing_input_is_named() -> None:
    body = json.dumps({"inputs": [{"name": "pixels", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
    with pytest.raises(InferenceRequestError, match=r"missing input 'tags' \(BYTES \[-1\]\) for model 'm'"):
        check_inputs(decode_request(body.encode(), None), SIGNATURE, "m")


def test_unknown_outputs_and_classification_are_refused() -> None:
    request = decode_request(*_body(inputs=_inputs(False), outputs=[triton.InferRequestedOutput("boxes")]))
    with pytest.raises(InferenceRequestError, match=r"unknown output 'boxes' for model 'm'; outputs are: 'scores'"):
        select_outputs(request, SIGNATURE, "m")
    request = decode_request(*_body(inputs=_inputs(False),
                                    outputs=[triton.InferRequestedOutput("scores", class_count=2)]))
    with pytest.raises(InferenceRequestError, match="classification extension is not supported"):
        select_outputs(request, SIGNATURE, "m")


def test_binary_sizes_must_add_up() -> None:
    body, json_size = _body(inputs=_inputs(True))
    assert json_size is not None
    with pytest.raises(InferenceRequestError, match="not claimed by any input"):
        decode_request(body + b"\x00\x00", json_size)
    with pytest.raises(InferenceRequestError, match=r"binary_data_size .* does not fit"):
        decode_request(body[:-1], json_size)
    with pytest.raises(InferenceRequestError, match="Inference-Header-Content-Length is 99999"):
        decode_request(body, 99999)


def test_a_body_that_is_not_json_is_a_bad_request() -> None:
    with pytest.raises(InferenceRequestError, match="invalid inference request"):
        decode_request(b"\x89PNG", None)
    with pytest.raises(InferenceRequestError, match="inputs: List should have at least 1 item"):
        decode_request(b'{"inputs": []}', None)
