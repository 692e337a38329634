"""Review: the analysts' marks on incidents and the accuracy they measure."""
