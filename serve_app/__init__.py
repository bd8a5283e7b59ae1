"""Layer 4, the service: KATO's API as a plain class, sessions and their locks, the predictor (fan-out, merge,
metrics), the cluster backend, the HTTP app and the Ray Serve deployment around it."""
