"""TrialLens: tools/pacs."""
