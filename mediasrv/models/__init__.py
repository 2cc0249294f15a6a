"""Machine-learned models: the model files (with their licences) and the code that runs them.

Layer: models. Each wrapper loads its model file from this folder once and runs it on
numpy arrays; no threads, sockets or time. Models are shipped here (taken from PyPI
wheels, source and version beside each file), never downloaded at run time. Modules here
may import the base modules (audio, clock, errors) and each other.
"""
