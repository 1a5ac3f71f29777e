"""Vision Tutor add-on: the teacher review queue and the prompt lab (control plane)."""

__version__ = "0.1.0"
