"""A real Ollama for the tests and benchmarks: build, models, server (not part of the product)."""
