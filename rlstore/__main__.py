from rlstore.cli import entry_point

entry_point()
