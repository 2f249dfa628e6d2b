"""Distillation training of the student: data, schedules, checkpoints, logs, the train loop."""
