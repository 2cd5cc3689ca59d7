"""Talking to a served model: the gRPC client and its results, several replicas, the request
loop and the images it sends, and workers sharing one run."""
