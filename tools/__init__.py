"""TrialLens: tools."""
