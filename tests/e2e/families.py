"""A gateway with one deployment per provider family, each served by the simulator speaking that family's wire."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import MASTER_KEY, UPSTREAM_KEY, Proc, free_port, start_process

# Logical model -> (provider family, the provider's model name). Each family also has a "-faulty" group
# (no retries, no breaker) whose upstream model gets faults injected by the tests.
FAMILIES = {
    "openai": "fam-openai-model",
    "anthropic": "claude-fam-model",
    "gemini": "gemini-fam-model",
    "bedrock": "anthropic.claude-fam-v1:0",
    "azure": "azure-fam-deployment",
}


def families_yaml(simulator_url: str) -> str:
    models = []
    for family, model in FAMILIES.items():
        models.append(
            f"  - name: {family}-chat\n    deployments:\n      - provider: sim-{family}\n        model: {model}\n"
        )
        models.append(
            f"  - name: {family}-faulty\n    deployments:\n      - provider: sim-{family}\n"
            f"        model: faulty-{family}\n"
            "    routing: {retry: {max_attempts: 1, same_deployment: 0}, breaker: {enabled: false}}\n"
        )
    for family in ("openai", "anthropic", "gemini", "bedrock"):
        # The session simulator paces "slow-model" (TTFT 20 ms, 40 tokens/s): room for a fault mid-stream.
        models.append(
            f"  - name: {family}-paced\n    deployments:\n      - provider: sim-{family}\n        model: slow-model\n"
            "    routing: {retry: {max_attempts: 1, same_deployment: 0}, breaker: {enabled: false}}\n"
        )
    for family in ("openai", "anthropic"):
        # Priced, so the ledger's cost can be checked against the tokens (USD per million: micro-dollars each).
        models.append(
            f"  - name: {family}-priced\n    deployments:\n      - provider: sim-{family}\n"
            f"        model: {FAMILIES[family]}\n        id: {family}-priced\n        price: {{input: 1, output: 10}}\n"
        )
    return f"""
server:
  access_log: {{enabled: false}}
providers:
  sim-openai:
    kind: openai
    base_url: {simulator_url}/v1
    api_key_env: SIM_UPSTREAM_KEY
  sim-anthropic:
    kind: anthropic
    base_url: {simulator_url}
    api_key_env: SIM_UPSTREAM_KEY
  sim-gemini:
    kind: gemini
    base_url: {simulator_url}/v1beta
    api_key_env: SIM_UPSTREAM_KEY
  sim-bedrock:
    kind: bedrock
    base_url: {simulator_url}
    aws_region: us-east-1
    aws_access_key_id_env: SIM_AWS_ACCESS_KEY
    aws_secret_access_key_env: SIM_AWS_SECRET
  sim-azure:
    kind: azure
    base_url: {simulator_url}
    api_key_env: SIM_UPSTREAM_KEY
models:
{"".join(models)}  - name: embed-fam
    kind: embedding
    deployments:
      - provider: sim-openai
        model: text-embedding-3-small
  - name: embed-gemini
    kind: embedding
    deployments:
      - provider: sim-gemini
        model: text-embedding-004
"""


@pytest.fixture(scope="session")
def families_gateway(simulator: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    workdir = tmp_path_factory.mktemp("families")
    config = workdir / "gateway.yaml"
    config.write_text(families_yaml(simulator.url))
    port = free_port()
    env = {
        "SLUICEGATE_MASTER_KEY": MASTER_KEY,
        "SIM_UPSTREAM_KEY": UPSTREAM_KEY,
        # SigV4 signs with these; the simulator checks the access key id in the credential scope.
        "SIM_AWS_ACCESS_KEY": UPSTREAM_KEY,
        "SIM_AWS_SECRET": "simulated-secret-key",
    }
    proc = start_process(
        ["serve", "--config", str(config), "--port", str(port)], port, workdir, "families", env, "/health/ready"
    )
    yield proc
    proc.stop()
