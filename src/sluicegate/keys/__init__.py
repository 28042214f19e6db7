"""Virtual API keys: secrets, the cached key lookup of the auth stage, revocation and the admin service."""
