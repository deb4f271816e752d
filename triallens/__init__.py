"""TrialLens: AI triage and measurement for clinical-trial imaging."""

__version__ = "0.1.0"

__all__ = ["__version__"]
