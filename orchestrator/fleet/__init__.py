"""What one vmrepair learns from many hosts: fault signatures, outcomes per signature, and the ranking
and concordance built from them."""
