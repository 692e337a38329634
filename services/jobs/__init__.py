"""Analysis jobs: the queue, the worker, one attempt's life, progress, AWS Batch, outages."""
