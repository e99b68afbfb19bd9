"""Strategy engine: the strategy library and the engine that combines it into targets."""
