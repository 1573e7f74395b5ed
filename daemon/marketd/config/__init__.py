"""Configuration: settings classes, their validators, and loading YAML + environment."""
