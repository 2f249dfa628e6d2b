"""COCO box / keypoint AP and ORPose-protocol MPJPE, per degradation scale."""
