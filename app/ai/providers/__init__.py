"""Model providers behind one interface (`base.Provider`)."""
