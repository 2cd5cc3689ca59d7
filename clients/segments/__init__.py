"""``seg-client segments`` and ``masks``: what models found, kept in the segment store, reviewed,
and exported for annotators."""
