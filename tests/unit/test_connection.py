"""A client's connection in gRPC's own terms: targets, the service config (round_robin, retryPolicy), TLS and the
inference key header; bad options refused naming the option."""

from __future__ import annotations

import json

import pytest

from clients.connection import Connection, ConnectionOptionError, grpc_target, header_for
from bench.pki import make_pki


@pytest.mark.parametrize("url, target", [
    ("localhost:8001", "localhost:8001"),
    ("127.0.0.1:8001,127.0.0.1:8011", "ipv4:127.0.0.1:8001,127.0.0.1:8011"),
    ("[::1]:8001,[::1]:8011", "ipv6:[::1]:8001,[::1]:8011"),
    ("dns:///rmr-grpc-headless.search.svc.cluster.local:8001", "dns:///rmr-grpc-headless.search.svc.cluster.local:8001"),
])
def test_targets_are_what_grpcs_resolvers_read(url, target):
    assert grpc_target(url) == target


@pytest.mark.parametrize("url, says", [
    ("rmr-0:8001,rmr-1:8001", "dns:///"), ("127.0.0.1:8001,[::1]:8001", "mixes"), (" , ", "empty")])
def test_a_target_grpc_cannot_read_is_refused_saying_what_to_write(url, says):
    with pytest.raises(ConnectionOptionError, match="url") as info:
        Connection(url)
    assert says in str(info.value)


def test_the_service_config_balances_round_robin_and_retries_what_a_stopping_replica_answers():
    config = Connection("127.0.0.1:1,127.0.0.1:2", attempts=4).service_config()
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    (method,) = config["methodConfig"]
    assert method["name"] == [{"service": "inference.GRPCInferenceService"}]
    policy = method["retryPolicy"]
    assert policy["maxAttempts"] == 4 and policy["retryableStatusCodes"] == ["UNAVAILABLE", "NOT_FOUND"]
    assert policy["initialBackoff"] == "0.2s" and policy["maxBackoff"] == "2s"
    assert "hedgingPolicy" not in method
    args = dict(Connection().channel_args())
    assert json.loads(args["grpc.service_config"]) == Connection().service_config()
    assert args["grpc.enable_retries"] == 1 and args["grpc.max_receive_message_length"] == 2 ** 31 - 1
    assert "methodConfig" not in Connection(attempts=1).service_config()
    assert dict(Connection(attempts=1).channel_args())["grpc.enable_retries"] == 0


@pytest.mark.parametrize("attempts", [0, 6])
def test_attempts_outside_grpcs_limit_are_refused(attempts):
    with pytest.raises(ConnectionOptionError, match="attempts must be 1..5"):
        Connection(attempts=attempts)


def test_the_inference_key_becomes_tritons_restricted_protocol_header():
    assert Connection(inference_key="rmr-inference=s3cret").headers() == {
        "triton-grpc-protocol-rmr-inference": "s3cret"}
    assert Connection().headers() == {}
    for bad in ("s3cret", "=s3cret", "key="):
        with pytest.raises(ConnectionOptionError, match="inference key must be key=value"):
            header_for(bad)


def test_tls_options_name_the_missing_piece(tmp_path):
    pki = make_pki(tmp_path)
    kwargs = Connection("127.0.0.1:1", ca=str(pki.ca), client_cert=str(pki.client_cert),
                        client_key=str(pki.client_key)).client_kwargs()
    assert kwargs["ssl"] is True and kwargs["root_certificates"] == str(pki.ca)
    assert "ssl" not in Connection().client_kwargs()
    with pytest.raises(ConnectionOptionError, match="go together"):
        Connection(ca=str(pki.ca), client_cert=str(pki.client_cert))
    with pytest.raises(ConnectionOptionError, match="needs ca"):
        Connection(client_cert=str(pki.client_cert), client_key=str(pki.client_key))
    with pytest.raises(ConnectionOptionError, match="ca: no such file"):
        Connection(ca=str(tmp_path / "missing.pem"))


def test_a_list_of_addresses_over_tls_checks_certificates_against_a_name(tmp_path):
    """A list has no host of its own: the first address stands in, or the name given."""
    pki = make_pki(tmp_path)
    listed = dict(Connection("127.0.0.1:1,127.0.0.1:2", ca=str(pki.ca)).channel_args())
    assert listed["grpc.ssl_target_name_override"] == "127.0.0.1"
    named = dict(Connection("127.0.0.1:1,127.0.0.1:2", ca=str(pki.ca), server_name="rmr.search").channel_args())
    assert named["grpc.ssl_target_name_override"] == "rmr.search"
    assert "grpc.ssl_target_name_override" not in dict(Connection("localhost:1", ca=str(pki.ca)).channel_args())
    assert "grpc.ssl_target_name_override" not in dict(Connection("127.0.0.1:1,127.0.0.1:2").channel_args())


def test_the_readmes_service_config_for_other_languages_is_the_clients_own():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Connecting to a fleet", 1)[1]
    block = section.split("```json", 1)[1].split("```", 1)[0]
    assert json.loads(block) == Connection().service_config()
