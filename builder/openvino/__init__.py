"""The OpenVINO runtimes: the checked ONNX network converted to OpenVINO IR, checked against
PyTorch, and (``--int8``) quantized by NNCF with the accuracy guard of :mod:`builder.quantization`."""
