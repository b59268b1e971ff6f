"""Action heads: map per-frame features (B, W, F) to action chunks (B, W, chunk_size, A)."""
