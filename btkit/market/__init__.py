"""Candles as the engine sees them: arrays, and finished-candle queries at a tick time."""
