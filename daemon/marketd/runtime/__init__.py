"""How stages run: the supervisor, restart backoff and the shutdown signal."""
