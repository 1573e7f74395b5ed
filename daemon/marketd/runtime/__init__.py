"""How stages run: the supervisor and its stages, restart backoff, the shutdown signal."""
