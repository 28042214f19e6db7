"""Prompt classification and the `auto` route: what a request needs, and the cheapest model group that
covers it."""
