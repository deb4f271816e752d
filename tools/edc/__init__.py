"""TrialLens: tools/edc."""
