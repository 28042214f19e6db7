"""The model host: small CPU models (sentence embeddings today) in child processes, off the event loop's core."""
