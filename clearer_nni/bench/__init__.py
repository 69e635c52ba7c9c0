"""Ground-truth tables of CLEARER spaces."""
