"""Post-ranking (seed 004, LLM4PR): features as soft tokens through the query-instructed adapter, a LoRA adapter on
the re-ranker's engine; the main task answers a permutation, the list judge (its auxiliary task) A or B."""
