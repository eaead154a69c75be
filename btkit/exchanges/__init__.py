"""Sources of candles: the port, the offline replay, and ccxt."""
