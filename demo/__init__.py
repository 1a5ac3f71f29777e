"""`scripts/demo`: Vision Tutor end to end on one machine (see demo/run.py)."""
