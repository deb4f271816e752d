"""TrialLens: tools/deid."""
