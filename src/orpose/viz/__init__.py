"""Pictures people look at: 2D skeleton overlays and 3D skeleton plots."""
