"""Ray Serve: HTTP ingress (KATO API), predictor (fan-out, merge, corpus metrics), sessions."""
