"""Sweeps: grid expansion, sweep files and the run store (:mod:`.grid`), packs of a sweep's runs
(:mod:`.packs`), executors (:mod:`.executors`, Slurm: :mod:`.slurm`), the run store as the leaderboard reads
it (:mod:`.records`) and the leaderboard (:mod:`.leaderboard`)."""
