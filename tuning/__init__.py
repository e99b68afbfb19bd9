"""Ray Tune jobs: backtests, meta-agent selection and retry-parameter search."""
