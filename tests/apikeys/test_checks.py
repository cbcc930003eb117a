"""System checks refuse unusable signing keys at start-up."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.checks import run_checks


def _ids(**kwargs):
    return {message.id for message in run_checks(**kwargs)}


@pytest.fixture
def weak_key(tmp_path):
    path = tmp_path / "weak.pem"
    path.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(path)


def test_the_configured_test_key_passes():
    assert "apikeys.E001" not in _ids()


@pytest.mark.parametrize("which", ["active", "retired"])
@pytest.mark.parametrize("problem", ["unreadable", "weak"])
def test_an_unusable_key_fails_the_checks(settings, tmp_path, weak_key, which, problem):
    path = str(tmp_path / "missing.pem") if problem == "unreadable" else weak_key
    if which == "active":
        settings.GERION_JWT_SIGNING_KEY = path
    else:
        settings.GERION_JWT_RETIRED_KEYS = [path]
    assert "apikeys.E001" in _ids()


def test_deploy_checks_refuse_the_generated_development_key(settings):
    settings.GERION_JWT_SIGNING_KEY = ""
    assert "apikeys.E010" in _ids(include_deployment_checks=True)
    assert "apikeys.E010" not in _ids()  # the embedded run is fine with it
