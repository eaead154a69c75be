"""Everything btkit keeps on disk: signal state, candle files."""
