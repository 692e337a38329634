"""Finding events: sentences and embeddings, hybrid search, query terms, cited answers, the event table."""
