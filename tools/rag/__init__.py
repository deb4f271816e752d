"""TrialLens: tools/rag."""
