"""Broker adapters: simulated and ccxt brokers, pools, routing, retries and the learning layer."""
