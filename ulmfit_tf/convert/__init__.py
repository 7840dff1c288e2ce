"""Converters from and to other ULMFiT implementations."""
