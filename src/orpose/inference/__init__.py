"""Running a trained student on images: predictors that return COCO-style results."""
