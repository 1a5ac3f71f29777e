"""End-to-end tests: the demo's processes, its real Home Assistant, and a real browser."""
