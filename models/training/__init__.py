"""Training of the shipped segmentation bundles on synthetic phantoms."""

# Importing a task module registers it in TASKS.
from models.training import ich_ct, lvef_cmr, recist_ct
from models.training.loop import TASKS, TrainingTask, train_task

__all__ = ["TASKS", "TrainingTask", "ich_ct", "lvef_cmr", "recist_ct", "train_task"]
