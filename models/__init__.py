"""TrialLens: models."""
