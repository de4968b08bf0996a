"""What every layer shares: the tables, the records flows write, the neutral messages, the
lean SQL store, dates, and who may see which student."""
