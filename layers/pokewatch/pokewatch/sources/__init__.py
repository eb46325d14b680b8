"""Price sources behind one interface (SPEC section 4)."""
