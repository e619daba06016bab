"""Training the classifier (paper 3.1): the loop, and a model from its settings or its run folder
(classifier.py), the settings (config.py), metrics (evaluate.py), using a trained run
(inference.py), and the Table 2 experiment (experiment.py).

`from tinyasc.train import train, train_step, Trainer` loads the loop on first use, so importing
`tinyasc.train.config` alone stays light.
"""

_LOOP = ("Trainer", "train", "train_step")


def __getattr__(name):
    if name in _LOOP:
        from tinyasc.train import classifier

        return getattr(classifier, name)
    raise AttributeError(f"module 'tinyasc.train' has no attribute {name!r}")
