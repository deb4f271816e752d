"""TrialLens: prompts."""
