"""Videos and frames: sources the analyst picks, storage (local or S3), highlight frames, stills, people's crops."""
