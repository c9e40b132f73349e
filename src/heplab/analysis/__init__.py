"""Analysis-level tools: resonance reconstruction, and (later) event classification,
likelihood-ratio estimation, unfolding and jet-parton assignment."""
