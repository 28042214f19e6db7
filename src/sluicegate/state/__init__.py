"""Hot counters: rate-limit windows, budget balances and reservations, behind one interface with an
in-process and a Redis backend."""
