"""Drivers: the per-symbol tick runner and the live loop, and their assembly."""
