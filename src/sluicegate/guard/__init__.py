"""The prompt firewall and output guardrails: detectors that read text and return findings, the policy that
turns findings into an action (allow, flag, redact, block), and the redactor. Pure functions over text: the
pipeline stages that apply them live in `sluicegate.pipeline.stages`."""
