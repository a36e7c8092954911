"""Behaviour cloning: supervised learning of the logged actions from the logged observations."""
