"""``seg-client meta``: per-image metadata of a group (ret_meta.json) from several served models,
posted to the metadata service."""
