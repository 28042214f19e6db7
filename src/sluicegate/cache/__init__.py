"""The response cache: answers kept by the exact request (and, optionally, by the meaning of its last
question) so a repeated request is answered without a provider call. Not the providers' prompt caching
(`cached_input_tokens`), which is a different thing."""
