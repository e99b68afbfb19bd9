"""The trading cycle, Ray-free: config schema, typed messages, steps, errors and the ledger."""
