"""tinycifar: tiny CIFAR-10 classifiers from advanced convolutions, fast to train on a CPU."""

__version__ = "0.1.0"
