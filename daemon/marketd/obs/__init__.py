"""What the operator sees: logs, metrics, traces, the HTTP probes and systemd notifications."""
