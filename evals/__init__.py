"""TrialLens: evals."""
