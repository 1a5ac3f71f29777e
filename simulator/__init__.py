"""An Ollama-compatible server with scripted student, teacher and embedding models.

It stands in for a real Ollama in tests, benchmarks and the demo: same HTTP API, same error
bodies, and models whose behaviour (accuracy, latency, confidence, logprobs, prompt
sensitivity) follows editable profiles over a library of synthetic camera scenes.
"""
