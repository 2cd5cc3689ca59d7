"""``seg-client groups``: named groups of images pulled from a manifest into the DATA/ layout."""
