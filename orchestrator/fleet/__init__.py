"""Fleet learning: fault signatures, outcome ranking and signed bundles shared between hosts."""
