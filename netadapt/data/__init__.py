"""COCO-format detection datasets (pycocotools), their transforms, and the embedded demo dataset."""
