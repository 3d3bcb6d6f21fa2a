"""Layer 5, feedback: outcomes and overrides flow back, Evidently monitors drift and quality, sensors request retraining."""
