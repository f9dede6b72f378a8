"""The detection benchmark: do the health rules flag broken training, and only broken training?

Real training runs (scikit-learn datasets, tiny torch models, a real
``metricreg.Monitor`` with the defaults) with ground truth, judged exactly as
``metricreg report`` judges them. ``python -m benchmarks.detection run`` trains
and prints the results tables; ``judge`` re-judges saved runs after a rule change.
See scenarios.py for the scenarios and score.py for the scoring.
"""
