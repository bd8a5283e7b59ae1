"""Layer 1, KATO's rules as pure functions: what observe and learn do to a session, per-candidate matching,
query options and filter-stage rules, corpus metrics and scoring, vector neighbours, and the reference engine and
in-process KATO that every faster path is tested against."""
