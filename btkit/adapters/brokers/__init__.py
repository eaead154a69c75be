"""Where orders go: a real exchange through ccxt, or the paper wallet."""
