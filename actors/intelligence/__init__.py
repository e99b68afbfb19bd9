"""Intelligence agent: indicators, patterns, anomalies, correlation and the torch forecaster."""
