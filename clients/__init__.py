"""Thin gRPC clients of the served models. No torch and no builder imports: everything a client
needs to know about a model (task, class names, input size) it reads from the server."""
