"""``seg-client infer``, ``evaluate`` and ``bench``: results per image, overlays, COCOeval and
label scores, perf_analyzer runs."""
