"""Packed training (docs/packing.md): the pack loop (:mod:`.loop`), the stacked model and masked Adam
(:mod:`.model`), members' own priors and regularizers (:mod:`.members`), grouped convolutions (:mod:`.conv`)."""
