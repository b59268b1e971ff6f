"""Small single-purpose helpers: atomic writes, run dirs, instantiation, logging."""
