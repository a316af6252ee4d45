"""Training: ``loop.train`` reads top to bottom; each of its mechanics is a module of its own.

* ``loop``        ``train(cfg, out_dir)``: one run into a run folder
* ``start``       the folder checked, device, precision, data as tensors, first weights
* ``epoch``       one pass over the training faces (seeded order, augmentation, steps)
* ``validation``  the validation figures, over every rank of a distributed run
* ``state``       what a run has done so far (saved in the checkpoint as a plain dict)
* ``checkpoint``  ``checkpoint.pt``, written atomically, and resuming from it
* ``schedule``    the learning rate of each step and the plateau rule
* ``signals``     SIGINT/SIGTERM held while an epoch's files are written; how a stop is told
* ``ema``, ``distill``, ``optim``  weight averaging, distillation, the optimiser
* ``distributed`` torchrun's ranks; ``parallel`` and ``members`` ensemble members side by side
* ``errors``      RunExistsError, TrainingInterrupted
"""
