"""REST: the HTTP client, request weights and the shared weight budgets."""
