"""Layer 4, distribution: champion models score data into contracted prediction products and serve any department."""
