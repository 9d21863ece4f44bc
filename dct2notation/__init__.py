"""dct2notation: move container-image signing from Docker Content Trust to Notation."""

__version__ = "0.1.0"
