"""Trainers for the segmentation U-Net, the nodule classifier and the malignancy model.

Uses :mod:`engine` for data, models and checkpoints; never imports Qt. The GUI
drives it only as a child process through ``python -m training``.
"""
