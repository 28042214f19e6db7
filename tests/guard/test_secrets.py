"""The secrets detector: provider keys, cloud credentials, private keys, JWTs and passwords, found where
they are; slugs, placeholders and prose left alone."""

from __future__ import annotations

import pytest

from sluicegate.guard import secrets

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


def found(text: str) -> list[tuple[str, str]]:
    return [(f.category, text[f.start : f.end]) for f in secrets.scan(text)]


@pytest.mark.parametrize(
    ("text", "category", "value"),
    [
        (
            "OPENAI_API_KEY=sk-proj-4fX9aQ2LmN7pR3sT8vW1yZ6bC5dE0gH",
            "secret_openai_key",
            "sk-proj-4fX9aQ2LmN7pR3sT8vW1yZ6bC5dE0gH",
        ),
        (
            "key sk-ant-api03-Zq8xW2mN5pL7kJ3hG9fD4sA1qW6eR0tY8uI2oP5aS7dF3gH-AbCdEfGh",
            "secret_anthropic_key",
            "sk-ant-api03-Zq8xW2mN5pL7kJ3hG9fD4sA1qW6eR0tY8uI2oP5aS7dF3gH-AbCdEfGh",
        ),
        ("aws_access_key_id = AKIAZ7QWERTY2345ABCD", "secret_aws_access_key", "AKIAZ7QWERTY2345ABCD"),
        (
            "aws_secret_access_key = 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",
            "secret_aws_secret_key",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCY8Xq2Lm9Abc",
        ),
        (
            "maps key AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY ok",
            "secret_gcp_key",
            "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
        ),
        (
            "token ghp_16C7e42F292c6912E7710c838347Ae178B4a in CI",
            "secret_github_token",
            "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        ),
        ("glpat-Xy7zW9vU3tS1rQ5pO8nM", "secret_gitlab_token", "glpat-Xy7zW9vU3tS1rQ5pO8nM"),
        (
            "SLACK_BOT_TOKEN=xoxb-2419681234-9876543210123-Vq8wE2rT5yU7iO9pA1sD3fG",
            "secret_slack_token",
            "xoxb-2419681234-9876543210123-Vq8wE2rT5yU7iO9pA1sD3fG",
        ),
        ("stripe sk_live_51HqLyjWDarjtT1zdp7dcXu2mS9", "secret_stripe_key", "sk_live_51HqLyjWDarjtT1zdp7dcXu2mS9"),
        ("Authorization: Bearer " + JWT, "secret_jwt", JWT),
        ("DATABASE_URL=postgres://app:Tr0ub4dor&3x@db.internal:5432/app", "secret_password", "Tr0ub4dor&3x"),
        ("Server=db;Database=app;User Id=sa;Password=Zx81!kLmq09;", "secret_password", "Zx81!kLmq09"),
        ('config = {"api_key": "a8Fq2Lx9Wm3Zp7Rt"}', "secret_password", "a8Fq2Lx9Wm3Zp7Rt"),
        (
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + "Ab3d" * 21 + "Xy==;",
            "secret_azure_key",
            "Ab3d" * 21 + "Xy==",
        ),
        ("sk-sluice-" + "aB3" * 14 + "Z", "secret_sluicegate_key", "sk-sluice-" + "aB3" * 14 + "Z"),
    ],
)
def test_finds_each_credential_where_it_is(text: str, category: str, value: str) -> None:
    assert (category, value) in found(text)


def test_a_private_key_is_found_whole() -> None:
    pem = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
        "-----END OPENSSH PRIVATE KEY-----"
    )
    text = f"here is my key:\n{pem}\nthanks"
    assert found(text) == [("secret_private_key", pem)]


def test_a_truncated_private_key_is_still_found() -> None:
    text = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
    assert found(text) == [("secret_private_key", text)]


@pytest.mark.parametrize(
    "text",
    [
        "use sk-learn-compatible-estimators-for-everything in the pipeline",
        "postgres://user:password@localhost/db and mysql://root:${DB_PASSWORD}@db/app",
        "Password=<your password here>; and password = '********'",
        "the token budget is max_tokens = 4096 and the secret sauce is patience",
        "a public key: -----BEGIN PUBLIC KEY----- MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA",
        "git commit 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b and uuid 123e4567-e89b-12d3-a456-426614174000",
        "https://example.com/a/very/long/path/segment/that/goes/on/and/on?query=string",
        "a_very_long_python_identifier_name_for_the_function = compute_everything_now()",
    ],
)
def test_leaves_look_alikes_alone(text: str) -> None:
    assert found(text) == []


def test_every_category_is_a_secret_category() -> None:
    assert all(r.category.startswith("secret_") and r.id.startswith("secret.") for r in secrets.default_scanner().rules)
