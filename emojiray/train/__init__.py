"""Training (Ray layer): Ray Train loops over Ray Data shards; checkpoints and schedules."""
