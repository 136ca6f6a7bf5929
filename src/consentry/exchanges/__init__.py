"""Exchanges: external hash sources this instance subscribes to, pulled with a checkpoint."""
