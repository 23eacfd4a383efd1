"""The leaderboard: eval records joined to their models and datasets, ranked."""
