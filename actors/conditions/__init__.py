"""Market-conditions agent: regime, anomalies, supply/demand and the market flux level."""
