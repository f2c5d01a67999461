"""What one vmrepair learns from many hosts: fault signatures, outcomes per signature, the ranking
and concordance built from them, and signed bundles that share validated fixes between hosts."""
