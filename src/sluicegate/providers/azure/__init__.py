"""The Azure OpenAI family: OpenAI's wire format on deployment URLs with an api-version."""
