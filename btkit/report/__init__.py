"""Reports: pure statistics over closed trades, and their Markdown form."""
