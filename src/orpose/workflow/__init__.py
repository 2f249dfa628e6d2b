"""Chains of orpose commands: the one-command demo and the paper's experiment tables.

Both are built from the ordinary CLI verbs (stages talk through files), run in-process as
recorded steps, so that the report can list the exact commands and a rerun resumes.
"""
