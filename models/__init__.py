"""Models for Percolate: preprocessing, architectures, calibration, registry, training.

Import the submodules you need (`models.registry`, `models.fit`, ...); nothing
is imported here so that inference code never pulls in training code.
"""
