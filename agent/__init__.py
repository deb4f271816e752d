"""TrialLens: agent."""
