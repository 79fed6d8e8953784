"""Security settings rendered for librdkafka: PLAINTEXT, SSL, SASL_SSL with SCRAM or AWS MSK IAM.

MSK IAM is SASL/OAUTHBEARER with a token that AWS's signer library builds from the process's AWS
credentials. librdkafka asks for a token through `oauth_cb` whenever the current one nears expiry;
the signer is an optional dependency (`pip install 'eventbus-cdc[msk-iam]'`), imported only when
that mechanism is configured.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from eventbus.errors import ConfigError
from eventbus.service.settings import MASK, KafkaSettings, SaslMechanism, SecurityProtocol

OAuthCallback = Callable[[str], tuple[str, float]]


def security_config(kafka: KafkaSettings, *, reveal: bool = False) -> dict[str, Any]:
    """The `security.protocol`, `sasl.*` and `ssl.*` properties (secrets masked unless `reveal`)."""
    conf: dict[str, Any] = {"security.protocol": str(kafka.security_protocol)}
    if kafka.security_protocol is SecurityProtocol.PLAINTEXT:
        return conf
    tls = kafka.tls
    if tls.ca_location is not None:
        conf["ssl.ca.location"] = str(tls.ca_location)
    if tls.certificate_location is not None:
        conf["ssl.certificate.location"] = str(tls.certificate_location)
    if tls.key_location is not None:
        conf["ssl.key.location"] = str(tls.key_location)
    if tls.key_password is not None:
        conf["ssl.key.password"] = tls.key_password.get_secret_value() if reveal else MASK
    conf["ssl.endpoint.identification.algorithm"] = "https" if tls.verify_hostname else "none"
    if kafka.security_protocol is SecurityProtocol.SASL_SSL:
        sasl = kafka.sasl
        conf["sasl.mechanism"] = str(sasl.mechanism)
        if sasl.mechanism is SaslMechanism.OAUTHBEARER:
            assert sasl.aws_region is not None  # checked by KafkaSettings
            conf["oauth_cb"] = msk_iam_oauth_cb(sasl.aws_region, sasl.aws_role_arn, sasl.aws_profile)
        else:
            conf["sasl.username"] = sasl.username
            assert sasl.password is not None  # checked by KafkaSettings
            conf["sasl.password"] = sasl.password.get_secret_value() if reveal else MASK
    return conf


def msk_iam_oauth_cb(region: str, role_arn: str | None = None, profile: str | None = None) -> OAuthCallback:
    """librdkafka's `oauth_cb`: a fresh MSK IAM token and its expiry (seconds since the epoch)."""
    try:
        signer = importlib.import_module("aws_msk_iam_sasl_signer")
    except ImportError:
        raise ConfigError(
            "sasl.mechanism OAUTHBEARER uses AWS MSK IAM, which needs the optional signer: "
            "pip install 'eventbus-cdc[msk-iam]' (aws-msk-iam-sasl-signer-python)"
        ) from None
    provider = signer.MSKAuthTokenProvider

    def aws_msk_iam_token(_oauthbearer_config: str) -> tuple[str, float]:
        if role_arn:
            token, expiry_ms = provider.generate_auth_token_from_role_arn(region, role_arn)
        elif profile:
            token, expiry_ms = provider.generate_auth_token_from_profile(region, profile)
        else:
            token, expiry_ms = provider.generate_auth_token(region)
        # The signer answers in milliseconds; librdkafka wants seconds.
        return token, expiry_ms / 1000

    return aws_msk_iam_token
