"""The analysis engine: frames in, typed records out. Knows nothing of Streamlit, the database
or S3 (the composition roots in ``services/`` download inputs and store results)."""
