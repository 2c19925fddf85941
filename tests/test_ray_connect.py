"""Joining a Ray cluster, with a stand-in for Ray: a Ray Client session the server failed to start
is tried again; any other failure, or the last try, is one line."""

from __future__ import annotations

import pytest

from nst.batch import ray_connect
from nst.errors import ConfigError


class FakeRay:
    def __init__(self, failures: list[Exception]):
        self.failures, self.inits, self.shutdowns = failures, [], 0

    def init(self, address=None, **options):
        self.inits.append(address)
        if self.failures:
            raise self.failures.pop(0)

    def shutdown(self):
        self.shutdowns += 1


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    monkeypatch.setattr(ray_connect, "check_reachable", lambda address: None)
    monkeypatch.setattr(ray_connect, "CLIENT_RETRY_WAIT", 0.0)


def test_a_client_session_the_server_failed_to_start_is_tried_again():
    ray = FakeRay([ConnectionAbortedError("Initialization failure from server:")])
    ray_connect.connect(ray, "ray://head:10001")
    assert ray.inits == ["ray://head:10001"] * 2 and ray.shutdowns == 1


def test_the_last_try_is_one_line():
    ray = FakeRay([ConnectionAbortedError("Initialization failure from server:")] * 3)
    with pytest.raises(ConfigError) as caught:
        ray_connect.connect(ray, "ray://head:10001")
    assert str(caught.value) == (
        "--ray: could not join the Ray cluster at ray://head:10001 "
        "(ConnectionAbortedError: Initialization failure from server:)"
    )
    assert len(ray.inits) == ray_connect.CLIENT_ATTEMPTS


@pytest.mark.parametrize(
    "address, failure",
    [("127.0.0.1:6379", ConnectionAbortedError("aborted")), ("ray://head:10001", RuntimeError("version mismatch"))],
)
def test_other_failures_are_not_retried(address, failure):
    ray = FakeRay([failure])
    with pytest.raises(ConfigError, match="could not join the Ray cluster"):
        ray_connect.connect(ray, address)
    assert len(ray.inits) == 1
