"""The ingress web pages as server-rendered HTML: the review queue and the prompt lab."""
