"""What every training run shares: checkpoints without pickle, the run folder, metrics, the stop
flag, and the figures of a run. Training, the translator and compression import this; it imports
none of them."""
