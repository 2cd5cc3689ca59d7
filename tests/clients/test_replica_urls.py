"""How ``--url`` values name several replicas."""

from __future__ import annotations

import pytest

from clients.triton.client import ClientError
from clients.triton.replicas import ReplicaSet, split_urls


def test_repeated_and_comma_separated_urls_each_count_once_in_order():
    assert split_urls(["a:1", "b:2, c:3", "a:1", " ,"]) == ["a:1", "b:2", "c:3"]


def test_no_url_is_a_clear_error():
    with pytest.raises(ClientError, match="pass --url HOST:PORT"):
        ReplicaSet([" , "])


def test_a_dns_name_stands_for_every_address_it_resolves_to():
    from clients.triton.replicas import resolve

    assert "127.0.0.1:8001" in resolve("localhost:8001")
    assert resolve("127.0.0.1:9") == ["127.0.0.1:9"]


@pytest.mark.parametrize(
    "name, message",
    [
        ("no-such-host.invalid:8001", "no-such-host.invalid does not resolve"),
        ("triton", "give dns:///NAME:PORT"),
    ],
)
def test_a_dns_name_that_does_not_resolve_is_one_clear_error(name, message):
    with pytest.raises(ClientError, match=message):
        ReplicaSet([f"dns:///{name}"])
