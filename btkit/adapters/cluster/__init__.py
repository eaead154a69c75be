"""Engines that run independent jobs on other machines (optional extras)."""
