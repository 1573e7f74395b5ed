"""The price-jump alerter: rules, the detector (pure), and the service that runs it."""
