"""R2D3 (Paine et al. 2019): R2D2's recurrent Q-learning (Kapturowski et al. 2019) with a fixed
share of demonstration sequences in every batch; batch mode (`rlstore train r2d3`) and online
mode (`rlstore run r2d3`: actors, a Reverb replay server and a learner in separate processes)."""
