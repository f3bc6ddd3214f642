"""Search: the space of candidate pass chains (:mod:`.space`), samplers that propose points of it
(:mod:`.samplers`), the walk over one or several spaces in Olive's execution orders (:mod:`.strategy`)
and THE ranking rule (:mod:`.ranking`: goals, priorities, ties at the measured spread, Pareto frontier).

Nothing here imports the engine; the engine realises what the strategy proposes.
"""
