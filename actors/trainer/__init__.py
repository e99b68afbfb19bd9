"""The agent trainer: continuous, batch and adaptive training of every learning agent.

Plain logic in :mod:`actors.trainer.trainer` (with templates, strategies, the store, the planner,
analytics, exports and the dashboard beside it); the Ray actor in :mod:`actors.trainer.actor`.
"""
