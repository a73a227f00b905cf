"""Model definitions only: no I/O, no device policy."""
