"""Pictures: the figures a finished run leaves (:mod:`.finished`), a run's pictures (:mod:`.pictures`), their layout (:mod:`.layout`), and latent-space figures
(:mod:`.latent`: low-posterior samples, traversals, interpolations)."""
