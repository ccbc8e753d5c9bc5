"""The Lightning layer: modules that own an adapted model, the lr schedule, the run-summary callback."""
