from clients.failure_log import FailureLog, failure_kind


def test_the_first_failures_of_a_kind_are_shown_then_counted():
    lines: list[str] = []
    log = FailureLog(lines.append, shown_per_kind=2)
    for i in range(5):
        log(f"/x/{i}.jpg", f"not a decodable image ({100 + i} bytes, starts with b'abc')")
    log("/x/z.jpg", "empty file (0 bytes)")
    assert lines == [
        "seg-client: failed: /x/0.jpg: not a decodable image (100 bytes, starts with b'abc')",
        "seg-client: failed: /x/1.jpg: not a decodable image (101 bytes, starts with b'abc')",
        "seg-client: failed: /x/z.jpg: empty file (0 bytes)",
    ]
    assert log.summary() == ["seg-client: failed: 3 more images: not a decodable image"]


def test_kinds_ignore_per_image_details():
    assert failure_kind("empty file (0 bytes)") == "empty file"
    assert failure_kind("cannot read: Permission denied") == "cannot read: Permission denied"


def test_an_image_met_twice_is_counted_once():
    """Workers sharing a run can meet one image's failure twice: it must not take the line of
    another image of that kind."""
    lines: list[str] = []
    log = FailureLog(lines.append, shown_per_kind=3)
    for image in ("/x/1.png", "/x/6.png", "/x/1.png", "/x/10.png"):
        log(image, "image is 10000x7000 (70.0 megapixels), over this server's limit")
    log("/x/6.png", "image is 10000x7000 (70.0 megapixels), over this server's limit (met by another worker)")
    assert [line.split(": ")[2] for line in lines] == ["/x/1.png", "/x/6.png", "/x/10.png"]
    assert log.summary() == []
