"""``seg-client``'s applications, one sub-package each: ``triton`` (the gRPC client, replicas, the
request loop every application sends through), ``inference`` (infer, evaluate, bench), ``groups``
(pulling named groups of images), ``segments`` (the segment store's workflow and annotator exports)
and ``meta`` (ret_meta build and post). No torch and no builder imports: everything a client needs
to know about a model (task, class names, input size) it reads from the server."""
