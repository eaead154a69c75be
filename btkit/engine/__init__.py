"""The pure core: no I/O, no clock, no exchange. Live and backtest both call it."""
