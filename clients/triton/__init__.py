"""Talking to a served model: the gRPC client and its results, several replicas, the request
loop and the images it sends, workers sharing one run, and how a run shows its progress."""
