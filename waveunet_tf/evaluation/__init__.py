"""Evaluation as the paper and SiSEC 2018 did it: :mod:`.evaluate` separates and scores MUSDB18 with museval,
:mod:`.scores` reads museval's score files and computes both aggregates, :mod:`.table` prints the paper's table
beside the published numbers, :mod:`.record` ties results to the model they scored."""
