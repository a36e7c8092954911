"""Batch agents trained from store versions (BC now; DQfD and R2D3 plug into the same pieces).

Shared pieces live here (specs, statistics, networks, training loop, checkpoints, logs, run
manifests, evaluation, export, reports); each agent is a folder with Acme's split: config.py,
learning.py, acting.py, builder.py, registered by name in `rlstore.agents.registry`.
"""
