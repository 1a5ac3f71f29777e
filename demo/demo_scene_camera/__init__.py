"""Demo cameras for `scripts/demo`: each shows the simulator's synthetic scenes in turn.

Copied into the demo's temporary Home Assistant configuration (with its manifest) at run time;
it is not part of Vision Tutor. Real cameras are what users point Vision Tutor at.
"""
