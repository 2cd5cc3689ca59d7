"""What the Python-backend network models share (``onnx_model.py``, ``openvino_model.py``): one
response per request from one batched network call. It sits beside them in their version folder."""

import triton_python_backend_utils as pb_utils


def network_responses(model, requests):
    """One response per request from ``model.run_batches`` over all of them: the network's
    outputs, or the error of the request it failed on. ``model`` has ``input_names``,
    ``output_names`` and ``run_batches(feeds)``."""
    feeds = [
        {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in model.input_names}
        for request in requests
    ]
    responses = []
    for outputs in model.run_batches(feeds):
        if isinstance(outputs, Exception):
            error = pb_utils.TritonError(f"model failed: {type(outputs).__name__}: {outputs}")
            responses.append(pb_utils.InferenceResponse(error=error))
        else:
            tensors = [pb_utils.Tensor(name, out) for name, out in zip(model.output_names, outputs)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
    return responses
