"""Training one run: the loop (:mod:`.loop`), its lifecycle around each step (:mod:`.lifecycle`), the run
directory (:mod:`.run_dir`), resume points (:mod:`.resume`), and what a step runs on: mixed precision
(:mod:`.precision`), data parallelism (:mod:`.distributed`), CPU kernels (:mod:`.kernels`), allocator settings
(:mod:`.perf`), the memory check before a build (:mod:`.limits`)."""
