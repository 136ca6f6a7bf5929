"""Policy: what to do about matches and evidence, as declarative rules (:mod:`.rules`) carried out
at run time by :mod:`.runtime`."""
