"""Models for Percolate: preprocessing, architectures, calibration, registry, training.

Import the submodules you need (`models.registry`, `models.train`, ...); nothing
is imported here so that inference code never pulls in training code.
"""
