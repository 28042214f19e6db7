"""Routing and resilience: which deployment serves a request, and how failures stay inside the gateway."""
