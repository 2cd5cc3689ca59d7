"""How ``--url`` values name several replicas."""

from __future__ import annotations

import pytest

from clients.replicas import ReplicaSet, split_urls
from clients.triton import ClientError


def test_repeated_and_comma_separated_urls_each_count_once_in_order():
    assert split_urls(["a:1", "b:2, c:3", "a:1", " ,"]) == ["a:1", "b:2", "c:3"]


def test_no_url_is_a_clear_error():
    with pytest.raises(ClientError, match="pass --url HOST:PORT"):
        ReplicaSet([" , "])
