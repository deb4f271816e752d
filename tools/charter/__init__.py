"""TrialLens: tools/charter."""
