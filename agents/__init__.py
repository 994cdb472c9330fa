"""Agents built from tdkit: Agent(init, act, update) and the training loops."""
