"""The paper's analyses: each a function that returns data for results.json."""
