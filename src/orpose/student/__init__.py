"""The student: Keypoint R-CNN with a two-branch (soft/hard) heatmap head and two 3D lifters."""

from orpose.student.model import ORPoseStudent, StudentConfig, build_student

__all__ = ["ORPoseStudent", "StudentConfig", "build_student"]
