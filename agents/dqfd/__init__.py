"""DQfD (Hester et al. 2018): deep Q-learning from demonstrations, its offline (pre-training) core."""
